import type { FastifyReply, FastifyRequest } from 'fastify';
import type { TaskEventHub } from '../task-event-hub.ts';
import { isTerminal, streamItems, type StreamItem, type TaskRecord, type TaskStore } from '../tasks.ts';

const HEARTBEAT_MS = 15_000;
/** A safety net: re-read the task now and then even if a change notice was missed. */
const POLL_MS = 2_000;

/**
 * `GET /v1/tasks/:taskId/events`: the task's replies and status changes as server-sent events
 * (`event: reply` / `event: status`), from the start or after `Last-Event-ID`; closes when the task
 * is done or failed.
 */
export async function streamTaskEvents(
  request: FastifyRequest,
  reply: FastifyReply,
  record: TaskRecord,
  tasks: TaskStore,
  hub: TaskEventHub,
): Promise<void> {
  const lastEventId = request.headers['last-event-id'];
  let cursor = typeof lastEventId === 'string' ? lastEventId : '';
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  res.write(': switchboard task events\n\n');

  let closed = false;
  let flushing = Promise.resolve();
  const write = (item: StreamItem): void => {
    res.write(`id: ${item.id}\nevent: ${item.type}\ndata: ${JSON.stringify(item.data)}\n\n`);
  };
  const flush = async (): Promise<void> => {
    const items = streamItems(await tasks.events(record.taskId));
    for (const item of items) {
      if (item.id > cursor) {
        write(item);
        cursor = item.id;
      }
      if (item.type === 'status' && isTerminal(item.data.status)) {
        finish();
        return;
      }
    }
  };
  const schedule = (): void => {
    flushing = flushing
      .then(() => (closed ? undefined : flush()))
      .catch((err: unknown) => {
        request.log.warn({ err, taskId: record.taskId }, 'task event stream failed to read the task');
      });
  };

  let unsubscribe: (() => void) | undefined;
  const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), HEARTBEAT_MS);
  const poll = setInterval(schedule, POLL_MS);
  function finish(): void {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    clearInterval(poll);
    unsubscribe?.();
    res.end();
  }
  res.on('close', finish);
  unsubscribe = await hub.subscribe(record.taskId, schedule, finish);
  if (closed) unsubscribe(); // the client left meanwhile
  // Read after subscribing: what is recorded from here on is announced to the stream (or, if the
  // hub could not subscribe, found by the poll).
  schedule();
}
