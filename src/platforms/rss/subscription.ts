import { z } from 'zod';
import { AddressSchema } from '../../core/address.ts';

/** One chat's subscription to one feed: the value of its route in the store. */
export const SubscriptionSchema = z.object({
  id: z.string().min(1),
  feedUrl: z.url(),
  to: AddressSchema,
  /** Without one, items go to the chat as they are; with one, through the agent. */
  instruction: z.string().min(1).max(1000).optional(),
  /** Who subscribed (their quota pays for the instruction path); null when an admin client did it for nobody. */
  createdBy: z.string().nullable(),
  chatType: z.enum(['private', 'group']).default('private'),
  feedTitle: z.string().optional(),
  createdAt: z.iso.datetime(),
});
export type Subscription = z.infer<typeof SubscriptionSchema>;
