// Kubernetes resource quantities, as the DSL's @memory and @cpu take them, in numbers a local run can use.

const SUFFIX: Record<string, number> = {
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};
const MEMORY = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/;
const CPU = /^(\d+(?:\.\d+)?)(m)?$/;

/**
 * Bytes of a memory quantity ("256Mi", "1.5Gi", "1G", "1048576"), rounded up; null when it is not one. A
 * quantity past 2^53 bytes (8 PiB: "8E", more than any machine has) is that much, not an invalid one.
 */
export function parseMemory(text: string): number | null {
  const match = MEMORY.exec(text.trim());
  if (!match) return null;
  const bytes = Math.ceil(Number(match[1]) * SUFFIX[match[2] ?? ""]!);
  return Number.isFinite(bytes) && bytes > 0 ? Math.min(bytes, Number.MAX_SAFE_INTEGER) : null;
}

/** Cores of a CPU quantity ("500m", "2", "0.5"); null when it is not one. */
export function parseCpu(text: string): number | null {
  const match = CPU.exec(text.trim());
  if (!match) return null;
  const cores = Number(match[1]) / (match[2] ? 1000 : 1);
  return Number.isFinite(cores) && cores > 0 ? cores : null;
}
