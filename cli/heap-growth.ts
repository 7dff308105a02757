// Node-only: how far the API's process lets its heap grow between two full collections.
import { setFlagsFromString } from "node:v8";

/**
 * The heap's growth between two full collections, as V8's --heap-growing-percent: at most twice what the
 * last one left. V8's own factor reaches 4 where the heap's limit is 2 GB or more (a quarter of a machine
 * with 8 GB or more): a 100,000-task submit, which leaves ~85 MB live in the middle of its parse, then
 * took the server to ~500 MB. The price is a full collection about twice as often as the heap grows.
 */
export const HEAP_GROWING_PERCENT = 100;

/**
 * Bounds the heap's growth (HEAP_GROWING_PERCENT) unless node was started with a --heap-growing-percent
 * of its own, which stays. Call it before the process holds much.
 */
export function boundHeapGrowth(
  execArgv: readonly string[] = process.execArgv,
  setFlags: (flags: string) => void = setFlagsFromString,
): boolean {
  if (execArgv.some((arg) => /^--heap[-_]growing[-_]percent(=|$)/.test(arg))) return false;
  setFlags(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  return true;
}
