import type { Metrics } from '../core/metrics.ts';
import type { Bus, ConsumeOptions, MessageHandler, PublishOptions, Subscription, Topology } from './bus.ts';

/** Wraps any bus adapter to count what it publishes and time what it consumes. */
export class InstrumentedBus implements Bus {
  constructor(
    private readonly inner: Bus,
    private readonly metrics: Metrics,
  ) {}

  declare(topology: Topology): Promise<void> {
    return this.inner.declare(topology);
  }

  publish(exchange: string, routingKey: string, body: Buffer, options?: PublishOptions): Promise<void> {
    return this.inner.publish(exchange, routingKey, body, options).then(() => this.metrics.published.inc({ exchange }));
  }

  consume(queue: string, handler: MessageHandler, options: ConsumeOptions): Promise<Subscription> {
    const { consumed, processing, redeliveries } = this.metrics;
    // Label sets made once per queue rather than per message.
    const labels = { queue };
    const ok = { queue, outcome: 'ok' };
    const failed = { queue, outcome: 'error' };
    return this.inner.consume(
      queue,
      async (msg) => {
        if (msg.redelivered) redeliveries.inc(labels);
        const started = performance.now();
        try {
          await handler(msg);
          consumed.inc(ok);
        } catch (err) {
          consumed.inc(failed);
          throw err;
        } finally {
          processing.observe(labels, (performance.now() - started) / 1000);
        }
      },
      options,
    );
  }

  ping(): Promise<void> {
    return this.inner.ping();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
