import { z } from 'zod';
import { AddressSchema } from '../../core/address.ts';
import { FormSchema } from '../../core/envelope.ts';

export const TaskStatusSchema = z.enum(['queued', 'running', 'waiting', 'done', 'failed']);
export type TaskStatus = z.infer<typeof TaskStatusSchema>;

export const CreateTaskBodySchema = z
  .object({
    text: z.string().min(1).describe('What to ask the agent, or the text to deliver as it is.'),
    conversation: z
      .string()
      .regex(/^[A-Za-z0-9_.:-]{1,128}$/)
      .optional()
      .describe('Names a conversation of this client; history is kept per conversation.'),
    to: z
      .array(AddressSchema)
      .min(1)
      .max(100)
      .optional()
      .describe('Where replies go (default: this client). Admins only for other addresses.'),
    mode: z.enum(['agent', 'deliver']).default('agent').describe('"deliver" hands the text to `to` as it is, with no LLM.'),
    callbackUrl: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe('Each reply is POSTed here, signed with X-Switchboard-Signature.'),
  })
  .strict();
export type CreateTaskBody = z.infer<typeof CreateTaskBodySchema>;

export const TaskAcceptedSchema = z.object({
  taskId: z.string(),
  chainId: z.string(),
  status: TaskStatusSchema,
});

export const ReplySchema = z.object({ text: z.string(), at: z.string() });

export const TaskViewSchema = z.object({
  taskId: z.string(),
  chainId: z.string(),
  status: TaskStatusSchema,
  replies: z.array(ReplySchema),
  error: z.string().optional(),
  /** While the task is `waiting`: the tool calls it waits for; decide with POST /v1/confirmations/:formId. */
  confirmation: FormSchema.optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type TaskView = z.infer<typeof TaskViewSchema>;

export const ErrorBodySchema = z.object({
  error: z.object({ code: z.string(), message: z.string(), field: z.string().optional() }),
});

export const TaskParamsSchema = z.object({ taskId: z.string().min(1).max(128) });
