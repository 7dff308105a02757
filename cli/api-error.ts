import { EXIT } from "./exit.ts";

/** An error answer of the API (or no answer at all: status 0), with the body's code and details. */
export class ApiRequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: unknown = null,
  ) {
    super(message);
    this.name = "ApiRequestError";
  }

  /** What `dwop` exits with: 1 not found or conflicting state, 2 invalid request, 3 server or auth. */
  get exitCode(): number {
    if (this.code === "not_dwop") return EXIT.server;
    if (this.status === 404 || this.status === 409) return EXIT.failed;
    if ([400, 413, 415, 422].includes(this.status)) return EXIT.usage;
    return EXIT.server;
  }
}
