import { z } from 'zod';
import { AddressSchema } from '../core/address.ts';
import { newMessageEnvelope, UserSchema, type Envelope } from '../core/envelope.ts';
import { v5 } from 'uuid';
import type { EnvelopeBus } from '../bus/envelope-bus.ts';
import type { Scheduler } from '../plugins/sdk.ts';
import type { Timers } from './timers.ts';

const KIND = 'message';
/** UUID namespace of scheduled-message ids (any fixed UUID). */
const SCHEDULE_NAMESPACE = '2f1c7f0e-8a4e-4c3b-9a57-5b8f6b2f6a10';

const ScheduledSchema = z.object({
  from: AddressSchema,
  user: UserSchema.nullable(),
  conversation: z.string(),
  chatType: z.enum(['private', 'group']),
  to: z.array(AddressSchema).min(1),
  text: z.string(),
});

/**
 * Messages that start a new chain later (reminders), kept as durable timers. The chain's root id is
 * the schedule id, so a timer that fires twice (a worker died mid-way) still starts one chain.
 */
export class ScheduledMessages {
  constructor(
    private readonly timers: Timers,
    private readonly bus: EnvelopeBus,
  ) {
    timers.on(KIND, (id, payload) => this.fire(id, payload));
  }

  /**
   * The scheduler a plugin gets while handling `node`: messages come back in the same conversation.
   * Ids derive from the request id and a count, so a redelivered node schedules the same timers.
   */
  for(node: Envelope, requestId: string): Scheduler {
    const { timers } = this;
    let count = 0;
    // Methods that use no `this`: a plugin may take them off the object.
    return {
      async message(at, text) {
        const id = v5(`${requestId}#${count++}`, SCHEDULE_NAMESPACE);
        const payload: z.infer<typeof ScheduledSchema> = {
          from: node.from,
          user: node.user,
          conversation: node.conversation,
          chatType: node.chatType,
          to: node.to,
          text,
        };
        await timers.add(KIND, id, at, JSON.stringify(payload));
        return id;
      },
      cancel(id) {
        return timers.cancel(KIND, id);
      },
    };
  }

  private async fire(id: string, payload: string): Promise<void> {
    const scheduled = ScheduledSchema.parse(JSON.parse(payload));
    await this.bus.publish(newMessageEnvelope({ ...scheduled, id }));
  }
}
