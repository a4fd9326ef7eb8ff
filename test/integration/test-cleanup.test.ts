import amqplib from 'amqplib';
import { describe, expect, it } from 'vitest';
import { SENDER_PLATFORMS } from '../../src/bus/topology.ts';
import { amqpUrl, uniqueName } from '../helpers/services.ts';
import { cleanupNamespace, startSwitchboard } from '../helpers/switchboard.ts';

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
});
