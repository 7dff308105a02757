import { createConnection, createServer, type Server, type Socket } from "node:net";

/**
 * A TCP forwarder to a real service (RabbitMQ, PostgreSQL) that a test can cut and restore: `cut()` closes
 * every connection and stops listening, as a broker that went down; `restore()` listens again on the same
 * port. `intercept`, when given, sees each chunk a client sends first: when it returns true it has answered
 * the chunk itself (on `client`, and closed `upstream` if it wants) and the chunk is not passed on.
 */
export class TcpProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
    private readonly intercept?: (chunk: Buffer, client: Socket, upstream: Socket) => boolean,
  ) {}

  async start(): Promise<void> {
    const server = createServer((client) => {
      const upstream = createConnection({ host: this.targetHost, port: this.targetPort });
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => {});
      }
      const intercept = this.intercept;
      if (intercept)
        client.on("data", (chunk: Buffer) => intercept(chunk, client, upstream) || upstream.write(chunk));
      else client.pipe(upstream);
      upstream.pipe(client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(this.port, "127.0.0.1", resolve));
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  restore(): Promise<void> {
    return this.start();
  }
}
