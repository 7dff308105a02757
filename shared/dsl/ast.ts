import type { TaskOptions } from "../model.ts";

/** A problem inside one line; the caller knows which line. */
export interface Issue {
  column: number;
  message: string;
}

/** One `name:upstream` pair as written, with where each half is for error messages. */
export interface ParsedParam {
  name: string;
  upstream: string;
  nameColumn: number;
  upstreamColumn: number;
  /** The upstream has the shape of a task name or `inputs.NAME` (otherwise an error was reported). */
  upstreamWellFormed: boolean;
}

/** A task as read from the file, before graph validation. */
export interface ParsedTask {
  name: string;
  /** 1-based line of `fun`. */
  line: number;
  nameColumn: number;
  /** The name passed `taskNameProblem`. */
  nameOk: boolean;
  /** The header was read to its end, so `params` holds every parameter. */
  complete: boolean;
  params: ParsedParam[];
  body: string;
  options: TaskOptions;
}
