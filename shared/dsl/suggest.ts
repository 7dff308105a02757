/**
 * "did you mean" among a set of names (tasks, decorators). A budget keeps a file with thousands of unknown
 * names against thousands of tasks fast: every candidate looked at costs one unit, and every comparison its
 * edit-distance cells; past the budget, suggestions stop.
 */
export class Suggester {
  private budget: number;
  private readonly candidates: { name: string; lower: string }[];
  // The same misspelling tends to repeat (one wrong upstream read by many tasks).
  private readonly answers = new Map<string, string | null>();

  constructor(candidates: Iterable<string>, budget = 2_000_000) {
    this.candidates = Array.from(candidates, (name) => ({ name, lower: name.toLowerCase() }));
    this.budget = budget;
  }

  /** The closest candidate within a small edit distance (case ignored), or null. */
  closest(word: string): string | null {
    const known = this.answers.get(word);
    if (known !== undefined) return known;
    const best = this.search(word);
    this.answers.set(word, best);
    return best;
  }

  private search(word: string): string | null {
    const target = word.toLowerCase();
    const start = target.slice(0, 3);
    // One- and two-letter names are close to everything: for them only a wrong case is suggested.
    const limit = target.length <= 2 ? 0 : target.length <= 4 ? 1 : target.length <= 7 ? 2 : 3;
    let best: string | null = null;
    let bestDistance = Number.POSITIVE_INFINITY;
    for (const { name, lower: other } of this.candidates) {
      // Looking costs too: 150,000 unknown names against 10,000 tasks of another length, each skipped
      // below, once took 20 s of the server's only thread.
      if (this.budget <= 0) return best;
      this.budget -= 1;
      // Slips happen mostly towards the end ("retry" for "retries"), so a shared start allows one more.
      const allowed = Math.min(bestDistance - 1, limit + (limit > 0 && other.startsWith(start) ? 1 : 0));
      if (Math.abs(other.length - target.length) > allowed) continue;
      // Each comparison also has a fixed cost, so many tiny ones cannot outrun the budget.
      const cost = (target.length + 1) * (other.length + 1) + 32;
      if (cost > this.budget) return best;
      this.budget -= cost;
      const d = distance(target, other, allowed);
      if (d <= allowed) {
        best = name;
        bestDistance = d;
      }
    }
    return best;
  }
}

/** Levenshtein distance, or `max + 1` as soon as it must exceed `max`. */
function distance(a: string, b: string, max: number): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      const value = Math.min(substitution, (previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1);
      current.push(value);
      rowMin = Math.min(rowMin, value);
    }
    if (rowMin > max) return max + 1;
    previous = current;
  }
  return previous[b.length] ?? max + 1;
}
