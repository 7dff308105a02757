// Stores objects in a new local storage at argv[2], one through each of LocalStorage's ways of writing: a
// small object (synchronous calls), a large one (fs/promises) and a stream; then two small ones into one
// new folder at once, the second started once the first made that folder. After each put returns it
// looks for a file named `returned-<name>` beside the storage (it is never there): the test, which runs
// this under strace, sees from that call when the put returned. For test/storage.local.durable.test.ts.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { OUTPUT_BUCKET } from "../../shared/model.ts";
import { LocalStorage } from "../../shared/storage/local.ts";

const root = process.argv[2]!;
const storage = new LocalStorage({ root, secret: "unused" });
const returned = (name: string) => existsSync(join(dirname(root), `returned-${name}`));

await storage.put(OUTPUT_BUCKET, "wf/small/output.txt", "small");
returned("small");
await storage.put(OUTPUT_BUCKET, "wf/large/output.txt", Buffer.alloc(300 * 1024, 1));
returned("large");
await storage.putStream(OUTPUT_BUCKET, "wf/streamed/output.txt", Readable.from([Buffer.from("streamed")]));
returned("streamed");
// As the dispatcher stores a run's output and log: the first put makes the folder and flushes its name;
// the second finds it made, and must not return before that name is on the disk either.
const first = storage.put(OUTPUT_BUCKET, "wf/pair/output.txt", "first");
const second = storage.put(OUTPUT_BUCKET, "wf/pair/attempt-1.log", "second");
await second;
returned("second");
await first;
returned("first");
