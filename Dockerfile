# One image for every role: `switchboard start --role <role>` picks what a container runs.
FROM node:20-slim
ENV NODE_ENV=production
# A larger young generation: far less time in garbage collection under load (docs/performance.md).
ENV NODE_OPTIONS=--max-semi-space-size=64
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY src ./src
COPY plugins ./plugins
USER node
ENV HTTP_HOST=0.0.0.0
EXPOSE 8080
ENTRYPOINT ["node", "bin/switchboard.js"]
CMD ["start", "--role", "all"]
