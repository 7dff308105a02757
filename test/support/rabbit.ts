import amqp from "amqplib";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { rabbitTopology } from "../../shared/bus/rabbit.ts";

const run = promisify(execFile);

/** The machine's RabbitMQ. */
export const RABBIT_URL = process.env.DWOP_TEST_RABBITMQ_URL ?? "amqp://guest:guest@127.0.0.1:5672";

/** A queue name of this test's own (label plus a random suffix), so test files run in parallel. */
export function uniqueQueueName(label: string): string {
  const slug = label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .slice(0, 40);
  return `dwop_t_${slug}_${randomBytes(3).toString("hex")}`;
}

/** Deletes the exchanges and queues a bus on `queue` declared; call it only when the test passed. */
export async function deleteRabbitTopology(queue: string): Promise<void> {
  const names = rabbitTopology(queue);
  const connection = await amqp.connect(RABBIT_URL);
  try {
    const channel = await connection.createChannel();
    await channel.deleteQueue(names.queue);
    await channel.deleteQueue(names.deadLetterQueue);
    await channel.deleteExchange(names.exchange);
    await channel.deleteExchange(names.deadLetterExchange);
  } finally {
    await connection.close();
  }
}

/** Runs `use` on a channel of a connection of its own (to act on the broker behind a bus's back). */
export async function withRabbitChannel<T>(use: (channel: amqp.Channel) => Promise<T>): Promise<T> {
  const connection = await amqp.connect(RABBIT_URL);
  try {
    const channel = await connection.createChannel();
    channel.on("error", () => {});
    return await use(channel);
  } finally {
    await connection.close().catch(() => {});
  }
}

/**
 * Makes the broker close every connection whose client named itself `connectionName`, as a broker
 * restart or a network cut would (only this test's connections: other tests run at the same time).
 * Resolves with how many it closed.
 */
export async function forceCloseConnections(connectionName: string): Promise<number> {
  const { stdout } = await run("rabbitmqctl", [
    "list_connections",
    "pid",
    "client_properties",
    "-q",
    "--no-table-headers",
  ]);
  const marker = `{"connection_name","${connectionName}"}`;
  const pids = stdout
    .split("\n")
    .filter((line) => line.includes(marker))
    .map((line) => line.split("\t")[0] ?? "")
    .filter((pid) => pid.startsWith("<"));
  for (const pid of pids) await run("rabbitmqctl", ["close_connection", pid, "test: forced close"]);
  return pids.length;
}
