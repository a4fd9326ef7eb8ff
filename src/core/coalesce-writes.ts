import { Socket } from 'node:net';

const flushers = new WeakMap<Socket, () => void>();

/**
 * Makes the writes a socket gets within one turn of the event loop leave as one `writev` instead of
 * one system call (and, with noDelay, one TCP packet) each. amqplib writes every frame, ack and
 * publish separately; under load that was the largest single cost of the process. The socket is
 * uncorked by setImmediate, after every I/O callback of this poll phase has run: what the
 * handlers of all the messages and requests that arrived together write leaves in one system call.
 * Returns false (and changes nothing) when `stream` is not a socket.
 */
export function coalesceWrites(stream: unknown): boolean {
  if (!(stream instanceof Socket)) return false;
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  let corked = false;
  const uncork = (): void => {
    if (!corked) return;
    corked = false;
    stream.uncork();
  };
  // Same signature as Socket.write: the arguments are passed through untouched.
  stream.write = ((...args: unknown[]): boolean => {
    if (!corked && !stream.destroyed) {
      corked = true;
      stream.cork();
      setImmediate(uncork);
    }
    return write(...args);
  }) as Socket['write'];
  flushers.set(stream, uncork);
  return true;
}

/**
 * Sends what a coalescing socket holds now. For a writer that batches on its own and runs from a
 * setImmediate itself (the publisher's pump): an uncork it scheduled from there would wait for the
 * next turn of the loop. Does nothing for any other stream.
 */
export function flushWrites(stream: unknown): void {
  if (stream instanceof Socket) flushers.get(stream)?.();
}
