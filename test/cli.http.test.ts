// The CLI's HTTP requests (cli/http.ts) against real sockets: a form arrives whole with its length and
// boundary, and a server that hangs up or never answers ends the request with a reason, never leaves it
// waiting with nothing else running (Node 20's fetch of a form did: the process exited 13, silently).
import { createServer as createHttpServer, type IncomingMessage } from "node:http";
import { createServer as createTcpServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { encodeForm, sendRequest } from "../cli/http.ts";

const servers: { close(): unknown }[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

async function listening<T extends Server | ReturnType<typeof createHttpServer>>(server: T): Promise<string> {
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

async function bodyOf(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** What sendRequest rejected with, as the CLI reports it: the cause's code, or its message. */
async function failure(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TypeError);
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? "";
}

describe("the CLI's requests", () => {
  it("send a form whole, with its length and its boundary, and read the answer", async () => {
    let seen: { type?: string; length?: string; body: string } | null = null;
    const url = await listening(
      createHttpServer((req, res) => {
        void bodyOf(req).then((body) => {
          seen = {
            type: req.headers["content-type"],
            length: req.headers["content-length"],
            body: body.toString(),
          };
          res.writeHead(201, { "content-type": "application/json" }).end('{"id":"w1"}');
        });
      }),
    );
    const form = new FormData();
    form.append("workflow", new Blob(["fun a():\n    print(1)\n"]), "a.workflow");
    const headers: Record<string, string> = {};
    const body = await encodeForm(form, headers);
    const answer = await sendRequest(`${url}/workflows`, { method: "POST", headers, body });
    expect(answer.status).toBe(201);
    expect(await answer.json()).toEqual({ id: "w1" });
    const boundary = /boundary=(.+)$/.exec(headers["content-type"]!)?.[1];
    expect(seen!.type).toBe(headers["content-type"]);
    expect(seen!.length).toBe(String(body.byteLength));
    expect(seen!.body).toContain(`--${boundary}`);
    expect(seen!.body).toContain('name="workflow"; filename="a.workflow"');
    expect(seen!.body).toContain("fun a():\n    print(1)\n");
  });

  it("end with the socket's reason when the server hangs up before reading the form", async () => {
    const url = await listening(createTcpServer((socket) => socket.destroy()));
    const form = new FormData();
    form.append("workflow", new Blob(["x".repeat(100_000)]), "big.workflow");
    for (let i = 0; i < 5; i++) {
      const headers: Record<string, string> = {};
      const body = await encodeForm(form, headers);
      const why = await failure(sendRequest(`${url}/workflows`, { method: "POST", headers, body }));
      expect(why).toMatch(/^(EPIPE|ECONNRESET)$/);
    }
  });

  it("end when a server that took the connection does not answer in time", async () => {
    const url = await listening(createTcpServer(() => {})); // accepts, reads nothing, says nothing
    const started = Date.now();
    const why = await failure(
      sendRequest(`${url}/readyz`, { method: "GET", headers: {}, answerTimeoutMs: 300 }),
    );
    expect(why).toBe("no answer within 0.3 s");
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  });
});
