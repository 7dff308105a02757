import { createHash, randomUUID } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Storage } from "../../shared/storage/storage.ts";

/** A storage adapter under test, with its signed URLs reachable over HTTP. */
export interface StorageFixture {
  storage: Storage;
  /** A bucket the test may write to. */
  bucket: string;
  close(): Promise<void>;
}

const MB = 1024 * 1024;

/** The behaviour every Storage adapter owes its callers; run it once per adapter. */
export function storageContract(name: string, makeStorage: () => Promise<StorageFixture>): void {
  describe(`Storage contract: ${name}`, () => {
    let fx: StorageFixture;
    // Keys under a fresh prefix, so adapters that share a bucket between runs never see each other's objects.
    let prefix: string;

    beforeEach(async () => {
      fx = await makeStorage();
      prefix = randomUUID();
    });
    afterEach(async () => {
      await fx.close();
    });

    it("returns the bytes that were put, text or binary", async () => {
      await fx.storage.put(fx.bucket, `${prefix}/t/output.txt`, "héllo, wörld ✓\n");
      expect(await text(await fx.storage.get(fx.bucket, `${prefix}/t/output.txt`))).toBe("héllo, wörld ✓\n");
      const binary = new Uint8Array([0, 255, 1, 254, 10, 13]);
      await fx.storage.put(fx.bucket, `${prefix}/t/data.bin`, binary);
      expect(await bytes(await fx.storage.get(fx.bucket, `${prefix}/t/data.bin`))).toEqual(binary);
    });

    it("returns null for an object that does not exist", async () => {
      expect(await fx.storage.get(fx.bucket, `${prefix}/missing/output.txt`)).toBeNull();
    });

    it("replaces an object that is put again", async () => {
      await fx.storage.put(fx.bucket, `${prefix}/t/output.txt`, "first, and longer");
      await fx.storage.put(fx.bucket, `${prefix}/t/output.txt`, "second");
      expect(await text(await fx.storage.get(fx.bucket, `${prefix}/t/output.txt`))).toBe("second");
    });

    it("moves an object over another, into a new folder, and refuses a source that does not exist", async () => {
      const [from, to] = [`${prefix}/t/attempt-2.output.txt`, `${prefix}/t/output.txt`];
      await fx.storage.put(fx.bucket, to, "attempt 1, which must not stay");
      await fx.storage.put(fx.bucket, from, "attempt 2");
      await fx.storage.move(fx.bucket, from, to);
      expect(await text(await fx.storage.get(fx.bucket, to))).toBe("attempt 2");
      expect(await fx.storage.get(fx.bucket, from)).toBeNull();
      await fx.storage.move(fx.bucket, to, `${prefix}/new/folder/output.txt`);
      expect(await text(await fx.storage.get(fx.bucket, `${prefix}/new/folder/output.txt`))).toBe(
        "attempt 2",
      );
      await expect(fx.storage.move(fx.bucket, from, to)).rejects.toThrow(/attempt-2\.output\.txt/);
      expect(await fx.storage.get(fx.bucket, to)).toBeNull();
    });

    it("removes objects, and takes keys that do not exist as already removed", async () => {
      const keys = [`${prefix}/a/main.py`, `${prefix}/b/main.py`, `${prefix}/inputs/x`];
      for (const key of keys) await fx.storage.put(fx.bucket, key, "x");
      await fx.storage.put(fx.bucket, `${prefix}/kept.txt`, "kept");
      await fx.storage.remove(fx.bucket, [...keys, `${prefix}/never/put.txt`]);
      for (const key of keys) expect(await fx.storage.get(fx.bucket, key)).toBeNull();
      expect(await text(await fx.storage.get(fx.bucket, `${prefix}/kept.txt`))).toBe("kept");
      await fx.storage.remove(fx.bucket, keys);
    });

    it("serves an object through a signed GET URL", async () => {
      await fx.storage.put(fx.bucket, `${prefix}/t/main.py`, "print('hi')\n");
      const url = await fx.storage.signUrl(fx.bucket, `${prefix}/t/main.py`, "GET", 60);
      const res = await fetch(url);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("print('hi')\n");
    });

    it("serves one byte range of an object through a signed GET URL, and 416 past its end", async () => {
      const key = `${prefix}/code.bundle`;
      const bundle = "# a\nprint('é')\n# b\nprint('✓ 😀')\n";
      await fx.storage.put(fx.bucket, key, bundle);
      const size = Buffer.byteLength(bundle);
      const url = await fx.storage.signUrl(fx.bucket, key, "GET", 60);
      const get = (range: string) => fetch(url, { headers: { range } });
      const b = Buffer.byteLength("# a\nprint('é')\n");

      const part = await get(`bytes=${b}-${size - 1}`);
      expect(part.status).toBe(206);
      expect(part.headers.get("content-range")).toBe(`bytes ${b}-${size - 1}/${size}`);
      expect(part.headers.get("content-length")).toBe(String(size - b));
      expect(await part.text()).toBe("# b\nprint('✓ 😀')\n");

      const cut = await get(`bytes=2-${size + 100}`); // past the end: cut to it
      expect([cut.status, cut.headers.get("content-range")]).toEqual([206, `bytes 2-${size - 1}/${size}`]);
      expect(Buffer.from(await cut.arrayBuffer())).toEqual(Buffer.from(bundle).subarray(2));
      const tail = await get("bytes=-5");
      expect([tail.status, await tail.text()]).toEqual([
        206,
        Buffer.from(bundle)
          .subarray(size - 5)
          .toString(),
      ]);

      const outside = await get(`bytes=${size}-${size + 10}`);
      expect(outside.status).toBe(416);
      expect(outside.headers.get("content-range")).toBe(`bytes */${size}`);
      await outside.arrayBuffer();
      for (const ignored of ["bytes=5-2", "items=0-1", "bytes=0-1,4-5"]) {
        const whole = await get(ignored);
        expect([whole.status, await whole.text()], ignored).toEqual([200, bundle]);
      }
    });

    it("stores and replaces an object through a signed PUT URL", async () => {
      const key = `${prefix}/t/output.txt`;
      for (const body of ["from the worker ✓\n", "again"]) {
        const url = await fx.storage.signUrl(fx.bucket, key, "PUT", 60);
        const res = await fetch(url, { method: "PUT", body });
        expect(res.ok, await res.text()).toBe(true);
        expect(await text(await fx.storage.get(fx.bucket, key))).toBe(body);
      }
    });

    it("streams a 5 MB object both ways", async () => {
      const key = `${prefix}/t/big.txt`;
      const chunk = new TextEncoder().encode("0123456789 héllo ✓ 日本語\n".repeat(2000));
      const count = Math.ceil((5 * MB) / chunk.length);
      const expected = createHash("sha256");
      for (let i = 0; i < count; i++) expected.update(chunk);
      const digest = expected.digest("hex");

      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent++ < count) controller.enqueue(chunk);
          else controller.close();
        },
      });
      const put = await fetch(await fx.storage.signUrl(fx.bucket, key, "PUT", 60), {
        method: "PUT",
        body,
        duplex: "half",
      } as RequestInit);
      expect(put.ok, await put.text()).toBe(true);

      expect(await sha256(await fx.storage.get(fx.bucket, key))).toBe(digest);
      const got = await fetch(await fx.storage.signUrl(fx.bucket, key, "GET", 60));
      expect(got.status).toBe(200);
      expect(await sha256(got.body)).toBe(digest);
    });
  });
}

async function bytes(stream: ReadableStream<Uint8Array> | null): Promise<Uint8Array> {
  expect(stream).not.toBeNull();
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function text(stream: ReadableStream<Uint8Array> | null): Promise<string> {
  return new TextDecoder().decode(await bytes(stream));
}

/** Hashes a stream chunk by chunk, never holding it whole. */
async function sha256(stream: ReadableStream<Uint8Array> | null): Promise<string> {
  expect(stream).not.toBeNull();
  const hash = createHash("sha256");
  for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) hash.update(chunk);
  return hash.digest("hex");
}
