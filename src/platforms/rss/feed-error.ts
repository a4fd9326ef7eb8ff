import { SwitchboardError } from '../../core/errors.ts';

export type FeedFailure = 'bad_url' | 'private_address' | 'network' | 'timeout' | 'http' | 'too_large' | 'not_a_feed';

/** A feed could not be fetched or read; the message is fit to show the person who subscribed. */
export class FeedError extends SwitchboardError {
  constructor(
    readonly failure: FeedFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`FEED_${failure.toUpperCase()}`, message, options);
  }
}
