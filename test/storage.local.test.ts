import { createHmac } from "node:crypto";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InvalidObjectPathError } from "../shared/storage/keys.ts";
import { LocalStorage } from "../shared/storage/local.ts";
import {
  localStorageRoutes,
  serveLocalStorage,
  type LocalStorageServer,
} from "../shared/storage/local-routes.ts";
import { storageContract } from "./support/storage-contract.ts";

const SECRET = "test-secret-0123456789";

storageContract("local files", async () => {
  const root = await mkdtemp(join(tmpdir(), "dwop-storage-"));
  const server = await serveLocalStorage({ root, secret: SECRET });
  return {
    storage: server.storage,
    bucket: "Task_Output",
    close: async () => {
      await server.close();
      await rm(root, { recursive: true, force: true });
    },
  };
});

describe("LocalStorage", () => {
  let dir: string;
  let root: string;
  let clock: number;
  let server: LocalStorageServer;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "dwop-storage-"));
    root = join(dir, "root");
    clock = Date.parse("2030-01-01T00:00:00Z");
    server = await serveLocalStorage({ root, secret: SECRET, now: () => clock });
  });
  afterEach(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  const storage = () => server.storage;

  it("signs METHOD, bucket/key and expiry with HMAC-SHA256", async () => {
    const url = new URL(await storage().signUrl("Task_Output", "wf/t/output.txt", "PUT", 60));
    const expires = String(clock / 1000 + 60);
    expect(url.origin + url.pathname).toBe(`${server.url}/storage/v1/object/Task_Output/wf/t/output.txt`);
    expect(url.searchParams.get("method")).toBe("PUT");
    expect(url.searchParams.get("expires")).toBe(expires);
    expect(url.searchParams.get("signature")).toBe(hmac(`PUT\nTask_Output/wf/t/output.txt\n${expires}`));
  });

  it("answers 404 with a JSON error for a signed GET of a missing object", async () => {
    const res = await fetch(await storage().signUrl("Task_Output", "wf/t/output.txt", "GET", 60));
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("not_found");
  });

  it("refuses a tampered signature, path, method or expiry with 403", async () => {
    await storage().put("Task_Output", "wf/a/output.txt", "secret a");
    await storage().put("Task_Output", "wf/b/output.txt", "secret b");
    const signed = new URL(await storage().signUrl("Task_Output", "wf/a/output.txt", "GET", 60));
    expect((await fetch(signed)).status).toBe(200);

    const badSignature = new URL(signed);
    const sig = badSignature.searchParams.get("signature") ?? "";
    badSignature.searchParams.set("signature", (sig[0] === "0" ? "1" : "0") + sig.slice(1));
    const otherPath = new URL(signed);
    otherPath.pathname = otherPath.pathname.replace("/a/", "/b/");
    const laterExpiry = new URL(signed);
    laterExpiry.searchParams.set("expires", String(Number(signed.searchParams.get("expires")) + 3600));
    const noSignature = new URL(signed);
    noSignature.searchParams.delete("signature");

    for (const url of [badSignature, otherPath, laterExpiry, noSignature]) {
      const res = await fetch(url);
      expect(res.status, url.href).toBe(403);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("forbidden");
    }

    const put = await fetch(signed, { method: "PUT", body: "overwritten" });
    expect(put.status).toBe(403);
    const signedPut = await storage().signUrl("Task_Output", "wf/a/output.txt", "PUT", 60);
    expect((await fetch(signedPut)).status).toBe(403);
    expect(await readText(storage(), "wf/a/output.txt")).toBe("secret a");
  });

  it("moves an object on the server for a remote storage, by a POST only the secret's holder can sign", async () => {
    // A dispatcher on another machine: the same secret and server, a DWOP_HOME of its own.
    const remote = new LocalStorage({
      root: join(dir, "elsewhere"),
      secret: SECRET,
      baseUrl: server.url,
      remote: true,
      now: () => clock,
    });
    await remote.put("Task_Output", "wf/t/attempt-2.output.txt", "attempt 2"); // on the server's disk
    await storage().put("Task_Output", "wf/t/output.txt", "attempt 1");
    expect(await readdir(dir)).toEqual(["root"]); // nothing on its own disk
    await remote.move("Task_Output", "wf/t/attempt-2.output.txt", "wf/t/output.txt");
    expect(await readText(storage(), "wf/t/output.txt")).toBe("attempt 2");
    expect(await storage().get("Task_Output", "wf/t/attempt-2.output.txt")).toBeNull();
    await expect(remote.move("Task_Output", "wf/t/attempt-2.output.txt", "wf/t/output.txt")).rejects.toThrow(
      /did not move Task_Output\/wf\/t\/attempt-2\.output\.txt: 404 no object/,
    );

    // What a worker holds, a signed PUT, moves nothing; nor does a MOVE whose destination was changed.
    await storage().put("Task_Output", "wf/u/attempt-1.output.txt", "late");
    const put = new URL(await storage().signUrl("Task_Output", "wf/u/attempt-1.output.txt", "PUT", 60));
    put.searchParams.set("to", "wf/t/output.txt");
    const asMove = new URL(put);
    asMove.searchParams.set("method", "MOVE");
    const expires = String(clock / 1000 + 60);
    const nonce = "0123456789abcdef01234567";
    const signed = hmac(`MOVE\nTask_Output/wf/u/attempt-1.output.txt\n${expires}\nwf/u/output.txt\n${nonce}`);
    const otherTarget = new URL(`${server.url}/storage/v1/object/Task_Output/wf/u/attempt-1.output.txt`);
    for (const [k, v] of Object.entries({
      method: "MOVE",
      to: "wf/t/output.txt",
      nonce,
      expires,
      signature: signed,
    })) {
      otherTarget.searchParams.set(k, v);
    }
    const traversing = new URL(otherTarget);
    traversing.searchParams.set("to", "../../Task_Code/wf/code.bundle");
    const otherNonce = new URL(otherTarget);
    otherNonce.searchParams.set("to", "wf/u/output.txt");
    otherNonce.searchParams.set("nonce", "f123456789abcdef01234567");
    for (const url of [put, asMove, otherTarget, traversing, otherNonce]) {
      expect((await fetch(url, { method: "POST" })).status, url.href).toBe(403);
    }
    const right = new URL(otherTarget);
    right.searchParams.set("to", "wf/u/output.txt");
    expect((await fetch(right, { method: "POST" })).status).toBe(200);
    // Made once: replayed after a later upload to the same object, it moves nothing.
    await storage().put("Task_Output", "wf/u/attempt-1.output.txt", "later still");
    const replayed = await fetch(right, { method: "POST" });
    expect(replayed.status).toBe(403);
    expect(((await replayed.json()) as { error: { message: string } }).error.message).toMatch(/made already/);
    expect(await readText(storage(), "wf/t/output.txt")).toBe("attempt 2");
    expect(await readText(storage(), "wf/u/output.txt")).toBe("late");
  });

  it("stores and moves on its own disk when a remote storage's root is its server's", async () => {
    const beside = new LocalStorage({
      root,
      secret: SECRET,
      baseUrl: server.url,
      remote: true,
      now: () => clock,
    });
    await beside.put("Task_Output", "wf/t/first.txt", "by the server, which makes the bucket's folder");
    const realFetch = globalThis.fetch;
    globalThis.fetch = () => Promise.reject(new Error("no request expected"));
    try {
      await beside.put("Task_Output", "wf/t/attempt-1.output.txt", "one machine");
      await beside.move("Task_Output", "wf/t/attempt-1.output.txt", "wf/t/output.txt");
    } finally {
      globalThis.fetch = realFetch;
    }
    expect(await readText(storage(), "wf/t/output.txt")).toBe("one machine");
  });

  it("stores its first output on its own disk when the server's root holds only the code bucket (the server down)", async () => {
    // A dispatcher sharing the API's DWOP_HOME: the submits made Task_Code, no output is stored yet.
    await storage().put("Task_Code", "wf/code.bundle", "code");
    const beside = new LocalStorage({ root, secret: SECRET, baseUrl: server.url, remote: true });
    const realFetch = globalThis.fetch;
    globalThis.fetch = () => Promise.reject(new Error("fetch failed: the API is down"));
    try {
      await beside.put("Task_Output", "wf/t/output.txt", "while the API was down");
    } finally {
      globalThis.fetch = realFetch;
    }
    expect(await readText(storage(), "wf/t/output.txt")).toBe("while the API was down");
  });

  it("stores through the server for a remote storage whose root it cannot write (a read-only home)", async () => {
    await writeFile(join(dir, "a-file"), "not a folder");
    const readOnly = new LocalStorage({
      root: join(dir, "a-file", "storage"),
      secret: SECRET,
      baseUrl: server.url,
      remote: true,
      now: () => clock,
    });
    await readOnly.put("Task_Code", "wf/code.bundle", "fired by a schedule elsewhere");
    expect(await readText(storage(), "wf/code.bundle", "Task_Code")).toBe("fired by a schedule elsewhere");
  });

  it("says why its server refused a request (a clock behind), and is not held to it after", async () => {
    let behind = 120_000;
    const late = new LocalStorage({
      root: join(dir, "elsewhere"),
      secret: SECRET,
      baseUrl: server.url,
      remote: true,
      now: () => clock - behind,
    });
    await expect(late.put("Task_Output", "wf/t/output.txt", "x")).rejects.toThrow(
      /403 this URL has expired \(is this machine's clock behind the server's\?\)/,
    );
    behind = 0;
    await late.put("Task_Output", "wf/t/output.txt", "on time");
    expect(await readText(storage(), "wf/t/output.txt")).toBe("on time");
  });

  it("refuses an expired URL", async () => {
    await storage().put("Task_Output", "wf/a/output.txt", "x");
    const url = await storage().signUrl("Task_Output", "wf/a/output.txt", "GET", 30);
    clock += 29_000;
    expect((await fetch(url)).status).toBe(200);
    clock += 1_000;
    const res = await fetch(url);
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/expired/);
  });

  it("refuses path traversal, even when the traversing path is correctly signed", async () => {
    await writeFile(join(dir, "secret.txt"), "outside the root");
    await storage().put("Task_Code", "wf/t/main.py", "the task code");
    const expires = String(clock / 1000 + 60);
    const query = (signedPath: string) =>
      `?method=GET&expires=${expires}&signature=${hmac(`GET\n${signedPath}\n${expires}`)}`;
    const attempts = [
      // URL normalisation would turn these into Task_Code/wf/t/main.py, whose signature they carry.
      `/storage/v1/object/Task_Output/x/../../Task_Code/wf/t/main.py${query("Task_Code/wf/t/main.py")}`,
      `/storage/v1/object/Task_Output/%2e%2e/Task_Code/wf/t/main.py${query("Task_Code/wf/t/main.py")}`,
      // Signed for the traversing key itself.
      `/storage/v1/object/Task_Output/%2e%2e/%2e%2e/secret.txt${query("Task_Output/../../secret.txt")}`,
      `/storage/v1/object/Task_Output/..%2f..%2fsecret.txt${query("Task_Output/../../secret.txt")}`,
      `/storage/v1/object/Task_Output/x%2f..%2f..%2f..%2fsecret.txt${query("Task_Output/x/../../../secret.txt")}`,
      `/storage/v1/object/Task_Output/%5c..%5csecret.txt${query("Task_Output/\\..\\secret.txt")}`,
      `/storage/v1/object/..${query("../")}`,
    ];
    for (const path of attempts) {
      const res = await rawGet(server.url, path);
      expect(res.status, path).toBe(403);
      expect(res.body).not.toContain("outside the root");
      expect(res.body).not.toContain("the task code");
    }
  });

  it("rejects keys that could leave their bucket in put, get and signUrl", async () => {
    const bad: [string, string][] = [
      ["Task_Output", "../x"],
      ["Task_Output", "a/../../x"],
      ["Task_Output", "/abs/path"],
      ["Task_Output", "a//b"],
      ["Task_Output", "a/"],
      ["Task_Output", "a/./b"],
      ["Task_Output", "a\\b"],
      ["Task_Output", "a\0b"],
      ["Task_Output", "a b"],
      ["Task_Output", ""],
      ["..", "x"],
      [".tmp", "x"],
      ["a/b", "x"],
    ];
    for (const [bucket, key] of bad) {
      await expect(storage().put(bucket, key, "x"), `${bucket} ${key}`).rejects.toThrow(
        InvalidObjectPathError,
      );
      await expect(storage().get(bucket, key)).rejects.toThrow(InvalidObjectPathError);
      await expect(storage().signUrl(bucket, key, "GET", 60)).rejects.toThrow(InvalidObjectPathError);
    }
    expect((await readdir(dir)).filter((name) => name !== "root")).toEqual([]);
  });

  it("accepts keys with letters of any script", async () => {
    const key = "wf-1/tâche_été/日本語.txt";
    await storage().put("Task_Output", key, "ok");
    expect(await readText(storage(), key)).toBe("ok");
    const url = await storage().signUrl("Task_Output", key, "GET", 60);
    expect(url).not.toMatch(/[^\x21-\x7e]/);
    expect(await (await fetch(url)).text()).toBe("ok");
  });

  it("keeps the old object until an upload is complete, and after an aborted one", async () => {
    await storage().put("Task_Output", "wf/t/output.txt", "old");
    const url = await storage().signUrl("Task_Output", "wf/t/output.txt", "PUT", 60);
    let push!: (chunk: string) => void;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        push = (chunk) => controller.enqueue(new TextEncoder().encode(chunk));
      },
    });
    const abort = new AbortController();
    const upload = fetch(url, { method: "PUT", body, duplex: "half", signal: abort.signal } as RequestInit);
    push("new, first half; ");
    await waitFor(async () => (await readdir(join(root, ".tmp")).catch(() => [])).length === 1);
    expect(await readText(storage(), "wf/t/output.txt")).toBe("old");
    abort.abort();
    await expect(upload).rejects.toThrow();
    await waitFor(async () => (await readdir(join(root, ".tmp"))).length === 0);
    expect(await readText(storage(), "wf/t/output.txt")).toBe("old");
  });

  it("keeps the old object when a small upload's connection drops before its Content-Length is in", async () => {
    await storage().put("Task_Output", "wf/t/output.txt", "old");
    const url = new URL(await storage().signUrl("Task_Output", "wf/t/output.txt", "PUT", 60));
    const socket = connect(Number(url.port), url.hostname);
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.write(
      `PUT ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Length: 100\r\n\r\nnew, only a part`,
    );
    await new Promise((resolve) => setTimeout(resolve, 100)); // the server has read the part
    socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await readText(storage(), "wf/t/output.txt")).toBe("old");
    expect(await readdir(join(root, ".tmp")).catch(() => [])).toEqual([]);
    // And the same upload whole is stored.
    const whole = await fetch(url, { method: "PUT", body: "x".repeat(100) });
    expect(whole.status).toBe(200);
    expect(await readText(storage(), "wf/t/output.txt")).toBe("x".repeat(100));
  });

  it("serves signed URLs in-process through app.request", async () => {
    const local = new LocalStorage({ root, secret: SECRET, baseUrl: "http://storage.test" });
    await local.put("Task_Code", "wf/t/main.py", "print(1)\n");
    const app = localStorageRoutes(local);
    const res = await app.request(await local.signUrl("Task_Code", "wf/t/main.py", "GET", 60));
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("print(1)\n");
    const put = await app.request(await local.signUrl("Task_Code", "wf/t/x.txt", "PUT", 60), {
      method: "PUT",
      body: "written",
    });
    expect(put.status).toBe(200);
    expect(await readText(local, "wf/t/x.txt", "Task_Code")).toBe("written");
  });

  it("refuses to sign before it knows its base URL", async () => {
    const local = new LocalStorage({ root, secret: SECRET });
    await expect(local.signUrl("Task_Code", "wf/t/main.py", "GET", 60)).rejects.toThrow(/base URL/);
    local.setBaseUrl("http://127.0.0.1:9/");
    expect(await local.signUrl("Task_Code", "wf/t/main.py", "GET", 60)).toMatch(
      /^http:\/\/127\.0\.0\.1:9\/storage\/v1\/object\/Task_Code\/wf\/t\/main\.py\?/,
    );
  });
});

function hmac(message: string): string {
  return createHmac("sha256", SECRET).update(message).digest("hex");
}

async function readText(storage: LocalStorage, key: string, bucket = "Task_Output"): Promise<string> {
  const stream = await storage.get(bucket, key);
  expect(stream).not.toBeNull();
  return new Response(stream).text();
}

/** A GET with the path sent exactly as written: fetch would normalise `..` and `%2e%2e` away first. */
function rawGet(base: string, path: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, path, method: "GET" }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}
