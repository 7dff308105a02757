import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { HookAccepted, Trigger, WorkflowDetail, WorkflowList } from "../functions/schemas.ts";
import { TERMINAL_WORKFLOW_STATES } from "../shared/model.ts";
import { checkSignature, signedHeaders } from "../shared/signature.ts";
import { buildTestWheel, curl, startDevServer, type DevServer } from "./support/api-server.ts";

// The seed's submit, over a real socket to `dwop dev` run as its own process.

const SAMPLE = `fun extract():
    import dwoptiny
    print(dwoptiny.GREETING)

fun shout(raw:extract):
    print(open("raw").read().strip().upper())
`;
const HOOK_WORKFLOW = `fun echo(body:inputs.payload):
    import json
    print(json.load(open("body"))["message"].upper())
`;
const HOOK_SECRET = "hook-secret-0123456789";
const CALLBACK_SECRET = "callback-secret-0123456789";

let server: DevServer;
let folder: string;
let wheels: string;
let passed = true;

beforeAll(async () => {
  // PIP_FIND_LINKS, in the system's temporary folder (/tmp in CI): each sandboxed run is shown it inside its
  // own /tmp. The sandbox is required, so a folder it could not show would fail the runs, not turn it off.
  wheels = await mkdtemp(join(tmpdir(), "dwop-wheels-"));
  await chmod(wheels, 0o755);
  await buildTestWheel(wheels);
  server = await startDevServer("api_e2e", {
    DWOP_TASK_SANDBOX: "required",
    PIP_NO_INDEX: "1",
    PIP_FIND_LINKS: wheels,
    PIP_NO_CACHE_DIR: "1",
    DWOP_CALLBACK_ALLOW: "127.0.0.1/32", // the callback test's receiver; the API and the sender both need it
  });
  folder = join(server.home, "client");
  await mkdir(folder);
  await writeFile(join(folder, "sample.workflow"), SAMPLE);
  await writeFile(join(folder, "requirements.txt"), "dwoptiny==0.1\n");
}, 120_000);
afterEach((ctx) => {
  if (ctx.task.result?.state !== "pass") {
    passed = false;
    console.error(server.stderr());
  }
});
afterAll(async () => {
  await server?.stop(passed);
  await rm(wheels, { recursive: true, force: true });
}, 60_000);

const auth = () => ({ authorization: `Bearer ${server.token}` });

async function api(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${server.url}${path}`, { ...init, headers: { ...auth(), ...init.headers } });
}

async function finished(id: string, timeoutMs = 90_000): Promise<WorkflowDetail> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const workflow = WorkflowDetail.parse(await (await api(`/workflows/${id}`)).json());
    if (TERMINAL_WORKFLOW_STATES.includes(workflow.status)) return workflow;
    if (Date.now() > deadline) throw new Error(`workflow did not end: ${JSON.stringify(workflow)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
type WorkflowDetail = ReturnType<typeof WorkflowDetail.parse>;

async function workflowCount(): Promise<number> {
  return WorkflowList.parse(await (await api("/workflows?limit=100")).json()).workflows.length;
}

describe("dwop dev over a socket", () => {
  it("runs the seed's curl -F submit to the end and serves the output", async () => {
    const submitted = await curl([
      "-X",
      "POST",
      `${server.url}/workflows`,
      "-H",
      `Authorization: Bearer ${server.token}`,
      "-F",
      `workflow=@${join(folder, "sample.workflow")}`,
      "-F",
      `requirements=@${join(folder, "requirements.txt")}`,
    ]);
    const { id, name, status } = WorkflowDetail.parse(JSON.parse(submitted));
    expect({ name, status }).toEqual({ name: "sample", status: "queued" });
    const done = await finished(id);
    expect(done.status).toBe("succeeded");
    const output = await curl([
      "-H",
      `Authorization: Bearer ${server.token}`,
      `${server.url}/workflows/${id}/tasks/shout/output`,
    ]);
    expect(output).toBe("HELLO FROM THE WHEEL\n");
    const logs = await curl([
      "-H",
      `Authorization: Bearer ${server.token}`,
      `${server.url}/workflows/${id}/tasks/extract/logs`,
    ]);
    expect(logs).toContain("hello from the wheel");
    const events = await curl([
      "-N",
      "-H",
      `Authorization: Bearer ${server.token}`,
      `${server.url}/workflows/${id}/events`,
    ]);
    expect(events).toMatch(/^id: \d+\ndata: \{.*"status":"queued"/m);
    expect(events.trimEnd().endsWith('event: end\ndata: {"status":"succeeded"}')).toBe(true);
    const refused = await fetch(`${server.url}/workflows/${id}`);
    expect(refused.status).toBe(401);
  });

  it("starts a workflow from a signed webhook and refuses bad, stale and replayed deliveries", async () => {
    const registered = await api("/triggers", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "greet", workflow: HOOK_WORKFLOW, secret: HOOK_SECRET }),
    });
    expect(registered.status).toBe(201);
    const { id: triggerId, url } = Trigger.parse(await registered.json());
    const deliver = (body: string, headers: Record<string, string>) =>
      fetch(`${server.url}${url}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body,
      });

    const body = JSON.stringify({ message: "hello hook" });
    const before = await workflowCount();
    const forged = await deliver(
      body,
      await signedHeaders("not-the-secret-012345", body, "d-forged", Date.now(), triggerId),
    );
    const stale = await deliver(
      body,
      await signedHeaders(HOOK_SECRET, body, "d-stale", Date.now() - 10 * 60_000, triggerId),
    );
    expect([forged.status, stale.status]).toEqual([401, 401]);

    const good = await signedHeaders(HOOK_SECRET, body, "d-1", Date.now(), triggerId);
    const accepted = await deliver(body, good);
    expect(accepted.status).toBe(202);
    const { workflowId } = HookAccepted.parse(await accepted.json());
    const replayed = await deliver(body, good);
    expect(replayed.status).toBe(409);
    expect(await workflowCount()).toBe(before + 1);

    expect((await finished(workflowId)).status).toBe("succeeded");
    const output = await api(`/workflows/${workflowId}/tasks/echo/output`);
    expect(await output.text()).toBe("HELLO HOOK\n");
  });

  it("POSTs a signed completion callback to the submitter's URL", async () => {
    const received: { headers: IncomingMessage["headers"]; body: string }[] = [];
    const receiver: Server = createServer((req, res) => {
      let text = "";
      req.on("data", (c: Buffer) => (text += c.toString("utf8")));
      req.on("end", () => {
        received.push({ headers: req.headers, body: text });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    try {
      const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/dwop`;
      const res = await api("/workflows", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          workflow: 'fun a():\n    print("x")\n',
          callback_url: url,
          callback_secret: CALLBACK_SECRET,
        }),
      });
      expect(res.status).toBe(201);
      const { id } = WorkflowDetail.parse(await res.json());
      const deadline = Date.now() + 60_000;
      while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(received).toHaveLength(1);
      const [call] = received;
      const headers = {
        signature: call!.headers["x-dwop-signature"] as string,
        timestamp: call!.headers["x-dwop-timestamp"] as string,
      };
      expect(
        await checkSignature(CALLBACK_SECRET, headers, new TextEncoder().encode(call!.body), Date.now()),
      ).toBeNull();
      expect(JSON.parse(call!.body)).toMatchObject({
        id,
        status: "succeeded",
        tasks: [{ name: "a", status: "succeeded" }],
      });
    } finally {
      receiver.close();
    }
  });
});
