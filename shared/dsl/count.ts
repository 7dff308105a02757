/**
 * How many tasks a workflow declares, counted without parsing it: every line that starts with `fun` at
 * column 1 (as `isHeaderStart` sees it). Stops once it has counted past `stopAfter`, so a file of a
 * million tasks is refused after reading as far as the first task over the limit, in linear time.
 */
export function countTasks(source: string, stopAfter = Number.POSITIVE_INFINITY): number {
  const header = /(?:^\uFEFF?|\r\n?|\n)fun(?=[ \t(\r\n]|$)/g;
  let count = 0;
  while (header.exec(source) !== null) {
    count += 1;
    if (count > stopAfter) break;
  }
  return count;
}
