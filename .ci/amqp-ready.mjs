// Exits 0 when RabbitMQ completes an AMQP handshake and confirms a publish within the time limit:
// a broker can listen on its port and still accept nobody (it wedged once with hundreds of leftover queues).
import amqp from 'amqplib';

const url = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const timer = setTimeout(() => {
  process.stderr.write(`ci: RabbitMQ at ${url} did not complete a handshake in 20 s\n`);
  process.exit(1);
}, 20_000);
try {
  const connection = await amqp.connect(url);
  const channel = await connection.createConfirmChannel();
  const { queue } = await channel.assertQueue('', { exclusive: true });
  channel.sendToQueue(queue, Buffer.from('ping'));
  await channel.waitForConfirms();
  await connection.close();
  clearTimeout(timer);
} catch (err) {
  process.stderr.write(`ci: RabbitMQ at ${url} refused the check: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
