import { z } from 'zod';

/**
 * The part of a Bot API `Update` the receiver reads, checked with zod where it enters (getUpdates or
 * the webhook). Objects are loose: Telegram adds fields over time and an unknown one is no error.
 */
const UserSchema = z.looseObject({
  id: z.number().int(),
  is_bot: z.boolean().default(false),
  first_name: z.string().default(''),
  last_name: z.string().optional(),
  username: z.string().optional(),
});

const ChatSchema = z.looseObject({
  id: z.number().int(),
  /** private, group, supergroup or channel; a kind Telegram adds later is read as a group. */
  type: z.string(),
  title: z.string().optional(),
});

const EntitySchema = z.looseObject({
  type: z.string(),
  offset: z.number().int().nonnegative(),
  length: z.number().int().nonnegative(),
  user: UserSchema.optional(),
});

const PhotoSizeSchema = z.looseObject({
  file_id: z.string().min(1),
  width: z.number().int(),
  height: z.number().int(),
  file_size: z.number().int().nonnegative().optional(),
});

const DocumentSchema = z.looseObject({
  file_id: z.string().min(1),
  file_name: z.string().optional(),
  mime_type: z.string().optional(),
  file_size: z.number().int().nonnegative().optional(),
});

const RepliedToSchema = z.looseObject({
  message_id: z.number().int(),
  from: UserSchema.optional(),
});

export const TelegramMessageSchema = z.looseObject({
  message_id: z.number().int(),
  /** Unix seconds. */
  date: z.number().int(),
  chat: ChatSchema,
  from: UserSchema.optional(),
  text: z.string().optional(),
  entities: z.array(EntitySchema).optional(),
  caption: z.string().optional(),
  caption_entities: z.array(EntitySchema).optional(),
  photo: z.array(PhotoSizeSchema).optional(),
  document: DocumentSchema.optional(),
  reply_to_message: RepliedToSchema.optional(),
  /** Set when an anonymous group admin or a channel speaks in a group (`from` is then a placeholder bot). */
  sender_chat: ChatSchema.optional(),
  migrate_to_chat_id: z.number().int().optional(),
});
export type TelegramMessage = z.infer<typeof TelegramMessageSchema>;
export type TelegramEntity = z.infer<typeof EntitySchema>;
export type TelegramUser = z.infer<typeof UserSchema>;

const CallbackQuerySchema = z.looseObject({
  id: z.string().min(1),
  from: UserSchema,
  /** The message that carried the button (absent for buttons of inline-mode messages). */
  message: z.looseObject({ message_id: z.number().int(), date: z.number().int(), chat: ChatSchema }).optional(),
  data: z.string().optional(),
});
export type TelegramCallbackQuery = z.infer<typeof CallbackQuerySchema>;

export const TelegramUpdateSchema = z.looseObject({
  update_id: z.number().int().nonnegative(),
  message: TelegramMessageSchema.optional(),
  callback_query: CallbackQuerySchema.optional(),
});
export type TelegramUpdate = z.infer<typeof TelegramUpdateSchema>;

/** The update kinds the receiver asks for (getUpdates and setWebhook `allowed_updates`). */
export const ALLOWED_UPDATES = ['message', 'callback_query'] as const;
