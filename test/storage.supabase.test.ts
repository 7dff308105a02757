import { request } from "node:http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../shared/config.ts";
import { InvalidObjectPathError } from "../shared/storage/keys.ts";
import {
  SupabaseStorage,
  SupabaseStorageError,
  supabaseStorageFromConfig,
} from "../shared/storage/supabase.ts";
import { storageContract } from "./support/storage-contract.ts";
import { startSupabaseStorageDouble, type SupabaseStorageDouble } from "./support/supabase-storage-double.ts";

storageContract("Supabase Storage (storage-api double)", async () => {
  const double = await startSupabaseStorageDouble();
  return {
    storage: new SupabaseStorage({ projectUrl: double.url, serviceKey: double.serviceKey }),
    bucket: "Task_Output",
    close: () => double.close(),
  };
});

describe("SupabaseStorage", () => {
  let double: SupabaseStorageDouble;
  let clock: number;
  let storage: SupabaseStorage;

  beforeEach(async () => {
    clock = Date.parse("2030-01-01T00:00:00Z");
    double = await startSupabaseStorageDouble({ now: () => clock });
    storage = new SupabaseStorage({ projectUrl: double.url, serviceKey: double.serviceKey });
  });
  afterEach(async () => {
    await double.close();
  });

  it("signs absolute URLs on the project's storage-api paths", async () => {
    await storage.put("Task_Code", "wf/t/main.py", "print(1)\n");
    const get = new URL(await storage.signUrl("Task_Code", "wf/t/main.py", "GET", 60));
    expect(get.origin + get.pathname).toBe(`${double.url}/storage/v1/object/sign/Task_Code/wf/t/main.py`);
    expect(get.searchParams.get("token")).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    const put = new URL(await storage.signUrl("Task_Output", "wf/t/output.txt", "PUT", 60));
    expect(put.origin + put.pathname).toBe(
      `${double.url}/storage/v1/object/upload/sign/Task_Output/wf/t/output.txt`,
    );
    // The upload URL was asked for with upsert, so a retried attempt can replace an earlier output.
    const signUpload = double.requests.find((r) => r.path.startsWith("/storage/v1/object/upload/sign/"));
    expect(signUpload?.upsert).toBe("true");
  });

  it("sends the service key as apikey and bearer on service calls, and nothing on signed URLs", async () => {
    await storage.put("Task_Code", "wf/t/main.py", "x");
    const put = double.requests.at(-1);
    expect(put).toMatchObject({ method: "POST", upsert: "true", apikey: double.serviceKey });
    expect(put?.authorization).toBe(`Bearer ${double.serviceKey}`);
    await fetch(await storage.signUrl("Task_Code", "wf/t/main.py", "GET", 60));
    expect(double.requests.at(-1)).toMatchObject({
      method: "GET",
      authorization: undefined,
      apikey: undefined,
    });
  });

  it("accepts the worker's upload: a raw PUT with text/plain and Content-Length", async () => {
    const url = new URL(await storage.signUrl("Task_Output", "wf/t/output.txt", "PUT", 60));
    const body = Buffer.from("from the python worker ✓\n");
    const status = await rawPut(url, body, {
      "Content-Type": "text/plain; charset=utf-8",
      "Content-Length": body.length,
    });
    expect(status).toBe(200);
    expect(await new Response(await storage.get("Task_Output", "wf/t/output.txt")).text()).toBe(
      "from the python worker ✓\n",
    );
  });

  it("maps storage-api's 400 with statusCode 404 to null, and a plain 404 too", async () => {
    expect(await storage.get("Task_Output", "wf/none/output.txt")).toBeNull();
    const res = await fetch(`${double.url}/storage/v1/object/Task_Output/wf/none/output.txt`, {
      headers: { authorization: `Bearer ${double.serviceKey}` },
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      statusCode: "404",
      code: "NoSuchKey",
      error: "not_found",
      message: "Object not found",
    });

    const behindProxy = new SupabaseStorage({
      projectUrl: double.url,
      serviceKey: double.serviceKey,
      fetch: async () => new Response("not here", { status: 404 }),
    });
    expect(await behindProxy.get("Task_Output", "wf/none/output.txt")).toBeNull();
  });

  it("throws a SupabaseStorageError naming the object when the key is wrong or storage is down", async () => {
    const wrongKey = new SupabaseStorage({ projectUrl: double.url, serviceKey: "not-the-service-key" });
    const err = await wrongKey.put("Task_Code", "wf/t/main.py", "x").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SupabaseStorageError);
    expect(err).toMatchObject({ status: 400, statusCode: "403", retryable: false });
    expect((err as Error).message).toMatch(
      /put Task_Code\/wf\/t\/main\.py failed: 400 \(403\): invalid signature/,
    );
    await expect(wrongKey.get("Task_Code", "wf/t/main.py")).rejects.toThrow(/invalid signature/);

    const down = new SupabaseStorage({ projectUrl: "http://127.0.0.1:9", serviceKey: "k" });
    await expect(down.put("Task_Code", "wf/t/main.py", "x")).rejects.toMatchObject({
      retryable: true,
      status: null,
    });
  });

  it("fails loudly for a bucket that does not exist", async () => {
    await expect(storage.put("Nope", "wf/t/main.py", "x")).rejects.toThrow(/Bucket not found/);
    await expect(storage.get("Nope", "wf/t/main.py")).rejects.toThrow(/Bucket not found/);
    await expect(storage.signUrl("Nope", "wf/t/output.txt", "PUT", 60)).rejects.toThrow(/Bucket not found/);
  });

  it("refuses signed URLs for another path, with a forged token, or after they expire", async () => {
    await storage.put("Task_Code", "wf/a/main.py", "secret a");
    await storage.put("Task_Code", "wf/b/main.py", "secret b");
    const signed = new URL(await storage.signUrl("Task_Code", "wf/a/main.py", "GET", 30));
    expect(await (await fetch(signed)).text()).toBe("secret a");

    const otherPath = new URL(signed);
    otherPath.pathname = otherPath.pathname.replace("/a/", "/b/");
    const forged = new URL(signed);
    forged.searchParams.set("token", `${signed.searchParams.get("token")?.slice(0, -2)}xx`);
    for (const [url, code] of [
      [otherPath, "InvalidSignature"],
      [forged, "InvalidJWT"],
    ] as const) {
      const res = await fetch(url);
      expect(res.status, url.href).toBe(400);
      expect(((await res.json()) as { code: string }).code).toBe(code);
    }

    clock += 30_000;
    const expired = await fetch(signed);
    expect(expired.status).toBe(400);
    expect(await expired.json()).toMatchObject({ code: "InvalidJWT", message: "jwt expired" });
  });

  it("checks keys before calling Supabase, as local storage does", async () => {
    for (const [bucket, key] of [
      ["Task_Output", "../x"],
      ["Task_Output", "a//b"],
      ["..", "x"],
    ]) {
      await expect(storage.put(bucket!, key!, "x")).rejects.toThrow(InvalidObjectPathError);
      await expect(storage.get(bucket!, key!)).rejects.toThrow(InvalidObjectPathError);
      await expect(storage.signUrl(bucket!, key!, "PUT", 60)).rejects.toThrow(InvalidObjectPathError);
    }
    expect(double.requests).toEqual([]);
  });

  it("is chosen by configuration only when both the project URL and the service key are set", () => {
    expect(supabaseStorageFromConfig(loadConfig({}))).toBeNull();
    expect(supabaseStorageFromConfig(loadConfig({ SUPABASE_PROJECT_URL: double.url }))).toBeNull();
    expect(
      supabaseStorageFromConfig(loadConfig({ SUPABASE_PROJECT_URL: double.url, SUPABASE_SERVICE_KEY: "k" })),
    ).toBeInstanceOf(SupabaseStorage);
  });
});

/** A PUT exactly as the Python worker sends it: one Content-Length body, no chunking. */
function rawPut(url: URL, body: Buffer, headers: Record<string, string | number>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "PUT", headers }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end(body);
  });
}
