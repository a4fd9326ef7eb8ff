import net from 'node:net';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { coalesceWrites, flushWrites } from '../../src/core/coalesce-writes.ts';

/** A connected socket pair on loopback; `received` collects what the server side reads. */
async function socketPair(): Promise<{ client: net.Socket; received: () => string; close: () => Promise<void> }> {
  let data = '';
  let serverSide: net.Socket | undefined;
  const server = net.createServer((socket) => {
    serverSide = socket;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const client = net.connect({ port, host: '127.0.0.1', noDelay: true });
  await new Promise<void>((resolve) => client.once('connect', resolve));
  return {
    client,
    received: () => data,
    close: async () => {
      client.destroy();
      serverSide?.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('coalesceWrites', () => {
  it('sends the writes of one tick as one writev, in order and unchanged', async () => {
    const pair = await socketPair();
    try {
      expect(coalesceWrites(pair.client)).toBe(true);
      const calls: number[] = [];
      const writev = pair.client._writev?.bind(pair.client);
      pair.client._writev = (chunks, callback) => {
        calls.push(chunks.length);
        writev?.(chunks, callback);
      };
      for (let i = 0; i < 10; i++) pair.client.write(`frame ${i};`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      pair.client.write('next tick;');
      await expect.poll(() => pair.received()).toBe(`${Array.from({ length: 10 }, (_, i) => `frame ${i};`).join('')}next tick;`);
      expect(calls[0]).toBe(10);
    } finally {
      await pair.close();
    }
  });

  it('flushWrites sends what is held at once, without waiting for the next turn of the loop', async () => {
    const pair = await socketPair();
    try {
      coalesceWrites(pair.client);
      const calls: number[] = [];
      const writev = pair.client._writev?.bind(pair.client);
      pair.client._writev = (chunks, callback) => {
        calls.push(chunks.length);
        writev?.(chunks, callback);
      };
      pair.client.write('a;');
      pair.client.write('b;');
      expect(calls).toEqual([]);
      flushWrites(pair.client);
      expect(calls).toEqual([2]);
      flushWrites(pair.client); // nothing held: nothing sent
      flushWrites(new PassThrough()); // not a coalescing socket: ignored
      await expect.poll(() => pair.received()).toBe('a;b;');
      expect(calls).toEqual([2]);
    } finally {
      await pair.close();
    }
  });

  it('leaves anything that is not a socket alone', () => {
    const stream = new PassThrough();
    const write = stream.write;
    expect(coalesceWrites(stream)).toBe(false);
    expect(coalesceWrites(undefined)).toBe(false);
    expect(stream.write).toBe(write);
  });
});
