// Stores two small objects into one new folder of a new local storage at argv[2], as the dispatcher stores a
// run's output and log: the second put starts once the first made the folder, and finds it made. Prints the
// time (seconds since the epoch, as strace -ttt prints its calls') at which each put returned. For
// test/storage.local.durable.test.ts, which runs this under strace with the flush of that folder's name held.
import { OUTPUT_BUCKET } from "../../shared/model.ts";
import { LocalStorage } from "../../shared/storage/local.ts";

const storage = new LocalStorage({ root: process.argv[2]!, secret: "unused" });
const now = () => ((performance.timeOrigin + performance.now()) / 1000).toFixed(6);
const first = storage.put(OUTPUT_BUCKET, "wf/pair/output.txt", "first");
const second = storage.put(OUTPUT_BUCKET, "wf/pair/attempt-1.log", "second");
await second;
console.log(`second ${now()}`);
await first;
console.log(`first ${now()}`);
