/** Exit codes scripts rely on. */
export const EXIT = {
  ok: 0,
  /** The workflow failed or was cancelled; a requested thing was not found. */
  failed: 1,
  /** Bad usage, a workflow file with DSL errors, or a request the server found invalid. */
  usage: 2,
  /** The server could not be reached, refused the credentials, or failed. */
  server: 3,
  interrupted: 130,
} as const;

/** An error the CLI reports as one line on stderr, with its exit code, and no stack trace. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = "CliError";
  }
}
