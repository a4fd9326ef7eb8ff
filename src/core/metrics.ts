import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Prometheus metrics of one process (prom-client). Each process has its own registry, served at
 * GET /metrics by the api role and, for processes without the api, on METRICS_PORT.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly published = new Counter({
    name: 'switchboard_messages_published_total',
    help: 'Messages published and confirmed, by exchange',
    labelNames: ['exchange'] as const,
    registers: [this.registry],
  });
  readonly consumed = new Counter({
    name: 'switchboard_messages_consumed_total',
    help: 'Messages taken off a queue, by queue and outcome (ok: acked; error: handed to the retry/dead-letter decision)',
    labelNames: ['queue', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly redeliveries = new Counter({
    name: 'switchboard_redeliveries_total',
    help: 'Messages delivered again after a failure or a lost consumer, by queue',
    labelNames: ['queue'] as const,
    registers: [this.registry],
  });
  readonly processing = new Histogram({
    name: 'switchboard_message_processing_seconds',
    help: 'Time from taking a message off a queue to settling it, by queue',
    labelNames: ['queue'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly deadLetters = new Counter({
    name: 'switchboard_dead_letters_total',
    help: 'Messages that reached the dead-letter queue, by original queue',
    labelNames: ['queue'] as const,
    registers: [this.registry],
  });
  readonly llmLatency = new Histogram({
    name: 'switchboard_llm_request_seconds',
    help: 'LLM request latency, by model and outcome',
    labelNames: ['model', 'outcome'] as const,
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 60, 120],
    registers: [this.registry],
  });
  readonly llmTokens = new Counter({
    name: 'switchboard_llm_tokens_total',
    help: 'Tokens used by LLM requests, by model and kind (prompt, completion)',
    labelNames: ['model', 'kind'] as const,
    registers: [this.registry],
  });
  readonly quotaRefusals = new Counter({
    name: 'switchboard_llm_quota_refusals_total',
    help: 'LLM calls refused because a daily quota was used up, by scope (public, pool:<name>) and limit',
    labelNames: ['scope', 'limit'] as const,
    registers: [this.registry],
  });
  readonly telegramUpdates = new Counter({
    name: 'switchboard_telegram_updates_total',
    help: 'Telegram updates the receiver handled, by outcome (published, ignored, duplicate, stale, malformed)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly chainsInFlight = new Gauge({
    name: 'switchboard_chains_in_flight',
    help: 'Chain nodes this worker is processing now',
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'switchboard_' });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
