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
