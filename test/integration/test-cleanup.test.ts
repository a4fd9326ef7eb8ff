import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import amqplib from 'amqplib';
import { describe, expect, it } from 'vitest';
import { SENDER_PLATFORMS } from '../../src/bus/topology.ts';
import { amqpUrl, uniqueName } from '../helpers/services.ts';
import { cleanupNamespace, startSwitchboard } from '../helpers/switchboard.ts';
import { spawnSwitchboard } from '../helpers/process.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('test cleanup', () => {
  it("removes every sender queue of a test's namespace from RabbitMQ (leftovers pile up and wedged the broker once)", async () => {
    const namespace = uniqueName('clean');
    const sb = await startSwitchboard({ mode: 'distributed', namespace });
    await sb.stop();
    await cleanupNamespace(namespace);

    const connection = await amqplib.connect(await amqpUrl());
    try {
      for (const platform of SENDER_PLATFORMS) {
        // A missing queue closes the channel with 404: one channel per check.
        const channel = await connection.createChannel();
        channel.on('error', () => undefined);
        await expect(channel.checkQueue(`${namespace}.out.${platform}`)).rejects.toThrow(/NOT_FOUND/);
      }
    } finally {
      await connection.close();
    }
  });

  it('leaves no data directory behind when a harness fails to start', async () => {
    // os.tmpdir() reads TMPDIR on every call: the harness makes its data directory in this one.
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'switchboard-tmpdir-'));
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    try {
      await expect(startSwitchboard({ env: { HTTP_PORT: 'not-a-port' } })).rejects.toThrow(/HTTP_PORT/);
      // Refused by the composition root, after the configuration was read.
      const webhook = { TELEGRAM_BOT_TOKEN: '1:x', TELEGRAM_MODE: 'webhook', TELEGRAM_WEBHOOK_URL: 'https://bot.example.com/v1/hook' };
      await expect(startSwitchboard({ env: webhook })).rejects.toThrow(/path of its own/);
      expect(await readdir(tmp)).toEqual([]);
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it('kills a spawned process that never says it started, instead of leaving it running', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-silent-'));
    try {
      // At warn the start line (info) is never written.
      const err: unknown = await spawnSwitchboard({ HTTP_PORT: '0', DATA_DIR: dataDir, LOG_LEVEL: 'warn' }, ['start'], 3_000).catch(
        (e: unknown) => e,
      );
      expect(String(err)).toMatch(/no start line/);
      const pid = Number(/pid (\d+) killed/.exec(String(err))?.[1]);
      expect(pid).toBeGreaterThan(0);
      await expect.poll(() => alive(pid), { timeout: 5_000 }).toBe(false);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
