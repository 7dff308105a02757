// The soak's HTTP client of the API: every call is retried through API restarts, as a careful user would.

export class ApiClient {
  constructor(
    private readonly url: string,
    private readonly token: string,
  ) {}

  /** POST /workflows with an Idempotency-Key, so a retry after a lost answer finds the same workflow. */
  async submit(name: string, source: string, key: string, deadline: number): Promise<string> {
    const res = await this.call("POST", "/workflows", deadline, JSON.stringify({ workflow: source, name }), {
      "idempotency-key": key,
    });
    if (res.status !== 201 && res.status !== 200)
      throw new Error(`submit ${name}: HTTP ${res.status} ${res.body}`);
    return (JSON.parse(res.body) as { id: string }).id;
  }

  /** Cancel or retry; resolves with the HTTP status (200, or 409 when the workflow was not in a state for it). */
  async act(id: string, action: "cancel" | "retry", deadline: number): Promise<number> {
    const res = await this.call("POST", `/workflows/${id}/${action}`, deadline);
    if (res.status !== 200 && res.status !== 409)
      throw new Error(`${action} ${id}: HTTP ${res.status} ${res.body}`);
    return res.status;
  }

  private async call(
    method: string,
    path: string,
    deadline: number,
    body?: string,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: string }> {
    for (let delay = 100; ; delay = Math.min(delay * 2, 2000)) {
      try {
        const res = await fetch(`${this.url}${path}`, {
          method,
          body,
          headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json", ...headers },
          signal: AbortSignal.timeout(20_000),
        });
        const text = await res.text();
        // 5xx: the API lost its database or storage for a moment (a fault); try again.
        if (res.status < 500) return { status: res.status, body: text };
        if (Date.now() > deadline) return { status: res.status, body: text };
      } catch (err) {
        if (Date.now() > deadline) throw err;
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
