import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { sameSecret, sha256Hex } from '../../core/ids.ts';

/** The header Telegram sends the webhook's secret token in. */
export const SECRET_HEADER = 'x-telegram-bot-api-secret-token';

export interface TelegramWebhookOptions {
  /** The path of TELEGRAM_WEBHOOK_URL. */
  readonly path: string;
  readonly secret: string;
  /** Resolves when the update is handled; throws when Telegram should send it again. */
  readonly receive: (update: unknown) => Promise<void>;
}

/** The secret of the webhook when none is configured: derived from the bot token, so every api process agrees. */
export function defaultWebhookSecret(token: string): string {
  return sha256Hex(`switchboard telegram webhook\n${token}`, 64);
}

/**
 * The route the api serves for Telegram's webhook. A request without the secret token is refused;
 * an update is answered 200 only when handled, so Telegram keeps sending it until it is.
 */
export function telegramWebhookRoute(options: TelegramWebhookOptions): (app: FastifyInstance) => void {
  const expected = Buffer.from(options.secret);
  return (app) => {
    // The secret is checked before the body is read: a stranger's post costs no parsing.
    const onRequest = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
      if (!sameSecret(expected, Buffer.from(String(request.headers[SECRET_HEADER] ?? '')))) {
        await reply.code(401).send({ ok: false, description: 'wrong or missing secret token' });
      }
    };
    app.post(options.path, { schema: { hide: true }, onRequest }, async (request, reply) => {
      try {
        await options.receive(request.body);
      } catch (err) {
        request.log.warn({ err }, 'a Telegram update could not be handled yet; Telegram will send it again');
        return reply.code(503).send({ ok: false, description: 'try again' });
      }
      return reply.code(200).send({ ok: true });
    });
  };
}
