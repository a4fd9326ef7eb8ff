/** A group that became a supergroup has a new chat id; the move is kept for a year. */
export const MIGRATION_TTL_MS = 365 * 86_400_000;

/** The store key that holds the new id of a chat that moved (old id → new id). */
export function migratedKey(chatId: number | string): string {
  return `tg:migrated:${chatId}`;
}
