// Stores three objects in a new local storage at argv[2], one through each of LocalStorage's ways of
// writing: a small object (synchronous calls), a large one (fs/promises) and a stream. For
// test/storage.local.durable.test.ts, which runs this under strace.
import { Readable } from "node:stream";
import { OUTPUT_BUCKET } from "../../shared/model.ts";
import { LocalStorage } from "../../shared/storage/local.ts";

const storage = new LocalStorage({ root: process.argv[2]!, secret: "unused" });
await storage.put(OUTPUT_BUCKET, "wf/small/output.txt", "small");
await storage.put(OUTPUT_BUCKET, "wf/large/output.txt", Buffer.alloc(300 * 1024, 1));
await storage.putStream(OUTPUT_BUCKET, "wf/streamed/output.txt", Readable.from([Buffer.from("streamed")]));
