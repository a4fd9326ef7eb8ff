import { createHash, timingSafeEqual } from 'node:crypto';
import { v7 } from 'uuid';

/** A new time-sortable id (UUIDv7): ids made later sort after ids made earlier. */
export function newId(): string {
  return v7();
}

/**
 * The id of the n-th envelope a node emits. Deterministic, so a redelivered node emits the same ids
 * and senders recognise what they already delivered; sorts after the node's own id and in emit order.
 */
export function emittedId(nodeId: string, n: number): string {
  return `${nodeId}.${String(n).padStart(3, '0')}`;
}

/** The SHA-256 of a text in hex, cut to `length` characters: stable ids and keys derived from content. */
export function sha256Hex(text: string, length = 64): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length);
}

/** Whether two secrets are equal, in time that does not depend on where they differ. */
export function sameSecret(expected: Buffer, given: Buffer): boolean {
  return expected.length === given.length && timingSafeEqual(expected, given);
}
