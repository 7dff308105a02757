/**
 * Waits until check() is true, looking every 50 ms; throws after timeoutMs, saying what was awaited
 * (`what`, or what it returns at that moment) when given.
 */
export async function until(
  check: () => Promise<boolean>,
  timeoutMs = 30_000,
  what?: string | (() => string),
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) {
      const awaited = typeof what === "function" ? what() : what;
      throw new Error(awaited ? `not reached in time: ${awaited}` : "condition not reached in time");
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
