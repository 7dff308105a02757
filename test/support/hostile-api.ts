import fc from "fast-check";

/**
 * Hostile requests derived from the API's OpenAPI document: for each operation, requests that each carry
 * at least one part the operation must refuse (a path parameter naming nothing or trying to leave its
 * route, a query parameter of the wrong type or range, a bad declared header, a body of the wrong type,
 * shape, encoding, size or content type), plus noise that must not matter (unknown query parameters,
 * odd or huge headers). Used by test/hostile.api.test.ts.
 */

export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  propertyNames?: JsonSchema;
  enum?: unknown[];
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  pattern?: string;
  format?: string;
  anyOf?: JsonSchema[];
}

export interface OpenApiOperation {
  security: unknown[];
  parameters: { name: string; in: "path" | "query" | "header"; required: boolean; schema: JsonSchema }[];
  requestBody?: { content: Record<string, { schema: JsonSchema }> };
  responses: Record<string, unknown>;
}

export interface OpenApiDocument {
  paths: Record<string, Record<string, OpenApiOperation>>;
}

export interface Operation {
  method: string;
  /** `/workflows/{id}` */
  template: string;
  op: OpenApiOperation;
  /** Every status the document lists for the operation. */
  statuses: number[];
}

export function operations(doc: OpenApiDocument): Operation[] {
  return Object.entries(doc.paths).flatMap(([template, ops]) =>
    Object.entries(ops).map(([method, op]) => ({
      method: method.toUpperCase(),
      template,
      op,
      statuses: Object.keys(op.responses).map(Number),
    })),
  );
}

/** `METHOD path [what is hostile]`, cut to a readable length. */
export function describeRequest(r: HostileRequest): string {
  return `${r.method} ${r.path.slice(0, 200)} [${r.why.join("; ")}]`;
}

export interface HostileRequest {
  [fc.toStringMethod]?: () => string;
  /** What was made hostile, for the failure message. */
  why: string[];
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Uint8Array | FormData;
  /** At least one part must be refused, so the answer must be a documented 4xx. */
  mustFail: boolean;
}

/** What a request may name that exists, for the owner the requests are made as. */
export interface RealValues {
  /** Real value of path parameter `param` in `template`, if there is one. */
  pathValue(template: string, param: string): string | undefined;
  /** A body the operation accepts (for `contentType`), which each mutation then breaks. */
  validBody(template: string, method: string, contentType: string): string | FormData | undefined;
}

// ---- Path parameters ----------------------------------------------------------------------------

/** Path segments, as sent (already percent-encoded where meant): traversal, NUL, bad encodings, injections. */
const HOSTILE_SEGMENTS = [
  "..", "%2e%2e", "%2E%2e", ".%2e", "%2e.", ".", "%2e", "..%2f", "..%2F..%2F..%2Fetc%2Fpasswd",
  "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..%5c..%5cwindows", "..%255c", "%252e%252e%252f", "%c0%ae%c0%ae",
  "%2F", "a%2Fb", "%5C", "a%5Cb", "%00", "x%00", "%00.workflow", "%ff", "%ED%A0%80", "%", "%zz", "%25",
  "'%20or%20'1'='1", "1;DROP%20TABLE%20dwop.workflows", "%0d%0aX-Injected:%201", "%0a", "%20", "+", "~",
  "*", "%2A", "null", "undefined", "-1", "0", "1.5", "99999999999999999999", "1e9", "NaN", "true", "[]",
  "{}", "%7B%7D", "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
  "%C3%A9", "%F0%9F%98%80", "%E2%80%AE", "%EF%BB%BF", "a".repeat(300), "%41".repeat(3000), "9".repeat(19),
]; // prettier-ignore

/** Values derived from a real one that must still name nothing. */
function nearMisses(real: string): string[] {
  const last = real.at(-1) ?? "0";
  const flipped = real.slice(0, -1) + (last === "0" ? "1" : "0");
  const out = [`${real}%00`, `${real}%2F..`, `${real}%20`, `${real}.`, `${real}x`, `x${real}`, flipped];
  if (/^\d+$/.test(real)) out.push(String(BigInt(real) + 1_000_000n), `-${real}`, `${real}.0`, `0x${real}`);
  return out;
}

const randomSegment = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }).map(encodeURIComponent),
  fc
    .string({ unit: fc.constantFrom(..."./%\\\0:;@&=+$,aA1-_~é"), minLength: 1, maxLength: 20 })
    .map((s) => s.replace(/%/g, "%25").replace(/\0/g, "%00").replace(/é/g, "%C3%A9")),
);

function decodesTo(segment: string, real: string): boolean {
  try {
    const decoded = decodeURIComponent(segment);
    return decoded === real || decoded.toLowerCase() === real.toLowerCase();
  } catch {
    return false;
  }
}

function hostileSegment(real: string | undefined): fc.Arbitrary<string> {
  const fixed = [...HOSTILE_SEGMENTS, ...(real ? nearMisses(real) : [])];
  return fc
    .oneof({ weight: 3, arbitrary: fc.constantFrom(...fixed) }, { weight: 1, arbitrary: randomSegment })
    .filter((s) => s !== "" && (real === undefined || !decodesTo(s, real)));
}

/** The path's parameter names, in order. */
export function pathParams(template: string): string[] {
  return [...template.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
}

/** True when `path`, once a client or server normalises it, still names the operation's route. */
export function keepsRoute(template: string, path: string): boolean {
  const normalised = new URL(path, "http://localhost").pathname;
  const pattern = new RegExp(`^${template.replace(/\{\w+\}/g, "[^/]+")}$`);
  return pattern.test(normalised);
}

// ---- Query parameters ---------------------------------------------------------------------------

const BAD_NUMBERS = [
  "", "abc", "-1", "0", "1.5", "1e400", "-1e400", "Infinity", "NaN", "101", "1000000", "99999999999999999999",
  "0x", "--1", "1,2", "١", "1 2", "%00", "%ff", "%zz", "[]", "{}", "null", "true",
]; // prettier-ignore

/** Values of a query parameter its schema refuses. */
function badQueryValues(schema: JsonSchema): string[] {
  if (schema.enum) {
    return [
      "",
      "QUEUED",
      "done",
      "queued%20",
      "queued%00",
      "%ff",
      "*",
      "queued,running",
      "x".repeat(500),
    ].filter((v) => !schema.enum!.includes(v));
  }
  if (schema.type === "integer" || schema.type === "number") {
    const min = schema.minimum ?? Number.NEGATIVE_INFINITY;
    const max = schema.maximum ?? Number.POSITIVE_INFINITY;
    return BAD_NUMBERS.filter((v) => {
      const n = Number(decodeSafe(v));
      return !(Number.isInteger(n) && n >= min && n <= max);
    });
  }
  if (schema.format === "uuid") {
    return [
      "",
      "x",
      "..%2F..%2F",
      "%00",
      "00000000-0000-0000-0000-00000000000g",
      "0".repeat(36),
      "{}",
      "%ff",
    ];
  }
  const out: string[] = ["%00", `a%00b`];
  if (schema.maxLength !== undefined)
    out.push("q".repeat(schema.maxLength + 1), "%C3%A9".repeat(schema.maxLength + 1));
  return out;
}

function decodeSafe(v: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

const NOISE_QUERY = [
  "__proto__=1", "constructor=x", "prototype[x]=1", "a%00=1", "%ff=%ff", "x=%zz", "%3Cscript%3E=1", "&&&",
  "=", "%26=%3D", `${"k".repeat(2000)}=v`, `v=${"%41".repeat(3000)}`, "callback=alert(1)", "x[]=1&x[]=2",
]; // prettier-ignore

// ---- Headers ------------------------------------------------------------------------------------

/** Values the named declared header must refuse (given the rest of the request). */
const BAD_HEADERS: Record<string, string[]> = {
  "idempotency-key": ["", "has space", "é", "\u00ff\u00fe", "k".repeat(256), "a\tb", "\u0001", "\u007f"],
  "last-event-id": ["", "-1", "abc", "1.5", "9".repeat(19), "1 2", "0x10", "\u00e9"],
};

const NOISE_HEADERS: [string, string][] = [
  ["x-forwarded-for", "127.0.0.1, ::1"],
  ["x-forwarded-host", "evil.example"],
  ["x-original-url", "/keys"],
  ["x-rewrite-url", "/admin"],
  ["x-http-method-override", "DELETE"],
  ["x-dwop-owner", "bob"],
  ["user-agent", "u".repeat(100_000)],
  ["cookie", "session=x; owner=bob"],
  ["accept", "text/html, */*;q=0.1"],
  ["accept-encoding", "gzip, br, zstd, identity;q=0"],
  ["x-latin1", "\u00e9\u00ff\u00a0"],
  ["x-tab", "a\tb"],
  ["forwarded", "for=127.0.0.1;proto=https"],
];

// ---- Bodies -------------------------------------------------------------------------------------

const encoder = new TextEncoder();

/** Byte sequences that are not UTF-8: a lone FF, a lone continuation byte, an overlong '.', a surrogate. */
const INVALID_UTF8: number[][] = [
  [0xff],
  [0xfe, 0xff],
  [0x80],
  [0xc0, 0xae],
  [0xed, 0xa0, 0x80],
  [0xe2, 0x82],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
];

/** `[[[...]]]` or `{"a":{"a":...}}`, `depth` levels deep. */
function deepJson(depth: number, kind: "array" | "object"): string {
  return kind === "array"
    ? `${"[".repeat(depth)}${"]".repeat(depth)}`
    : `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
}

/** Workflow sources the DSL refuses. */
const BAD_WORKFLOWS = [
  "", "fun (", "fun a(:x):\n    pass\n", "fun a():\n", "fun a(x:b):\n    pass\n", "def a():\n    pass\n",
  "fun a():\n    pass\n\u0000", "x\n".repeat(600), "fun a(x:a):\n    pass\n", "\ufeff\ufeff", "@retries(-1)\nfun a():\n    pass\n",
  "fun a():\n    print('\u0000')\n", "fun a(../x:inputs.y):\n    pass\n",
]; // prettier-ignore

function typesOf(schema: JsonSchema): string[] {
  if (schema.anyOf) return schema.anyOf.flatMap(typesOf);
  if (Array.isArray(schema.type)) return schema.type;
  return schema.type ? [schema.type] : [];
}

const WRONG_VALUES: Record<string, unknown[]> = {
  string: ["x", "", "0123456789abcdef0123"],
  number: [0, -1, 1.5, 1e308, -0],
  integer: [0, 7],
  boolean: [true, false],
  null: [null],
  array: [[], ["x"], [[]]],
  object: [{}, { a: "x" }, { __proto__: "x" }],
};

/** A value of a type the property's schema does not allow. */
function wrongTypeValues(schema: JsonSchema): unknown[] {
  const allowed = typesOf(schema);
  if (allowed.length === 0) return [];
  return (
    Object.entries(WRONG_VALUES)
      .filter(([type]) => !allowed.includes(type) && !(type === "integer" && allowed.includes("number")))
      // A whole number is of the type "integer" even where it is listed as a number (0 for a priority).
      .flatMap(([type, values]) =>
        type === "number" && allowed.includes("integer")
          ? values.filter((v) => !Number.isInteger(v))
          : values,
      )
  );
}

/** String values the property's schema refuses (length, pattern, format, NUL). */
function badStrings(name: string, schema: JsonSchema): string[] {
  if (!typesOf(schema).includes("string")) return [];
  const out: string[] = [];
  if (schema.minLength) out.push("s".repeat(schema.minLength - 1));
  if (schema.maxLength !== undefined)
    out.push("s".repeat(schema.maxLength + 1), "é".repeat(schema.maxLength + 1));
  if (schema.pattern) {
    const re = new RegExp(schema.pattern);
    out.push(
      ...["", "a b", "../x", "a/b", "é", "-x", "x".repeat(101), "a\u0000b", "a\nb"].filter(
        (v) => !re.test(v),
      ),
    );
  }
  if (schema.format === "uri")
    out.push("not a url", "javascript:alert(1)", "file:///etc/passwd", "ftp://x/", "http://");
  if (name === "workflow") out.push(...BAD_WORKFLOWS);
  // Postgres text cannot hold NUL: refused as invalid, never a 500.
  out.push(`nul\u0000${"x".repeat(schema.minLength ?? 0)}`);
  return out;
}

type JsonObject = Record<string, unknown>;

/** A JSON body broken in one way, as the bytes sent. */
function brokenJson(schema: JsonSchema, valid: JsonObject, maxBytes: number): fc.Arbitrary<{ why: string; body: string | Uint8Array }> {
  const props = Object.entries(schema.properties ?? {});
  const text = (why: string, value: unknown) => ({ why, body: JSON.stringify(value) });
  const options: fc.Arbitrary<{ why: string; body: string | Uint8Array }>[] = [
    fc.constantFrom("[]", "1", '"x"', "null", "true", "{", '{"a":', "{'a':1}", '{"a":1,}', "NaN", "", " ", "{}x",
      "\u0000", "[".repeat(100_000), '{"__proto__":{"x":1}}', `${JSON.stringify(valid)}${JSON.stringify(valid)}`,
    ).map((body) => ({ why: `syntax or top level: ${body.slice(0, 30)}`, body })),
    fc.constantFrom(...props.map(([n]) => n)).map((n) => text(`extra field beside ${n}`, { ...valid, [`${n}_`]: "x", "": 1 })),
    fc.integer({ min: 100, max: 50_000 }).chain((depth) =>
      fc.constantFrom(...props.map(([n]) => n), "__extra").chain((n) =>
        fc.constantFrom("array" as const, "object" as const).map((kind) => ({
          why: `${kind} ${depth} deep in ${n}`,
          body: `{${Object.entries(valid).filter(([k]) => k !== n).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)},`).join("")}${JSON.stringify(n)}:${deepJson(depth, kind)}}`,
        })),
      ),
    ),
    fc.constantFrom(...props.map(([n]) => n)).map((n) => ({
      why: `body over the limit in ${n}`,
      body: JSON.stringify({ ...valid, [n]: "x".repeat(maxBytes + 1) }),
    })),
  ]; // prettier-ignore
  if (schema.additionalProperties === false) {
    options.push(fc.constant(text("unknown field", { ...valid, surprise: 1 })));
  }
  for (const name of schema.required ?? []) {
    const { [name]: _, ...rest } = valid;
    options.push(fc.constant(text(`missing ${name}`, rest)));
  }
  for (const [name, prop] of props) {
    const wrong = wrongTypeValues(prop);
    if (wrong.length > 0) options.push(fc.constantFrom(...wrong).map((v) => text(`${name} of a wrong type: ${JSON.stringify(v)}`, { ...valid, [name]: v })));
    const bad = badStrings(name, prop);
    if (bad.length > 0) options.push(fc.constantFrom(...bad).map((v) => text(`${name} = ${JSON.stringify(v).slice(0, 40)}`, { ...valid, [name]: v })));
    if (prop.propertyNames || (typeof prop.additionalProperties === "object")) {
      options.push(fc.constantFrom("1x", "", "a-b", "é", "a.b", "a\u0000").map((k) => text(`${name} with key ${JSON.stringify(k)}`, { ...valid, [name]: { [k]: "v" } })));
      options.push(fc.constantFrom(...WRONG_VALUES.number!, ...WRONG_VALUES.array!, null).map((v) => text(`${name} with a non-string value`, { ...valid, [name]: { ok: v } })));
    }
    if (typesOf(prop).includes("string")) {
      // Invalid UTF-8 inside a string value: the bytes of the valid body around them.
      options.push(
        fc.constantFrom(...INVALID_UTF8).map((bytes) => {
          const marker = "\u0001MARK\u0001";
          const json = JSON.stringify({ ...valid, [name]: `${String(valid[name] ?? "x")}${marker}` });
          const [head = "", tail = ""] = json.split(JSON.stringify(marker).slice(1, -1));
          return { why: `invalid UTF-8 ${bytes.map((b) => b.toString(16)).join(" ")} in ${name}`, body: concat(encoder.encode(head), Uint8Array.from(bytes), encoder.encode(tail)) };
        }),
      );
    }
  }
  return fc.oneof(...options);
} // prettier-ignore

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Content types a JSON route must refuse (with the valid body), and ones that cannot parse as multipart. */
const WRONG_TYPES = [
  "text/plain", "application/x-www-form-urlencoded", "application/xml", "application/jsonp", "text/json",
  "application/json-patch+json", "application/octet-stream", "multipart/form-data; boundary=zzz",
  "application/x-json", "json", "application", "*/*", "application/json\u00e9",
]; // prettier-ignore

/** A multipart submission broken in one way. */
function brokenForm(
  schema: JsonSchema,
  valid: () => FormData,
  maxBytes: number,
): fc.Arbitrary<{ why: string; body: FormData | Uint8Array; type?: string }> {
  const props = Object.keys(schema.properties ?? {});
  const form = (why: string, edit: (f: FormData) => void) =>
    fc.constant(null).map(() => {
      const f = valid();
      edit(f);
      return { why, body: f };
    });
  const file = (bytes: Uint8Array | string, name = "x.workflow") => new File([bytes as BlobPart], name);
  return fc.oneof(
    form("missing workflow", (f) => f.delete("workflow")),
    fc.constantFrom("surprise", "Workflow", "workflow ", "inputs", "inputs.", "", "__proto__").map((k) => ({
      why: `unknown field ${JSON.stringify(k)}`,
      body: withField(valid(), k, "x"),
    })),
    fc.constantFrom(...props).map((k) => ({ why: `${k} twice`, body: withField(withField(valid(), k, "0123456789abcdef0"), k, "0123456789abcdef0") })),
    fc.constantFrom("inputs.1x", "inputs.a-b", "inputs.é", "inputs.a b", "inputs.a/b", "inputs.a\u0000").map((k) => ({
      why: `input field ${JSON.stringify(k)}`,
      body: withField(valid(), k, file("v", "v.bin")),
    })),
    fc.constantFrom(...BAD_WORKFLOWS).map((src) => ({ why: `workflow ${JSON.stringify(src).slice(0, 30)}`, body: replaced(valid(), "workflow", file(src)) })),
    fc.constantFrom(...INVALID_UTF8).map((bytes) => ({
      why: "workflow file not UTF-8",
      body: replaced(valid(), "workflow", file(concat(encoder.encode("fun a():\n    print('"), Uint8Array.from(bytes), encoder.encode("')\n")))),
    })),
    fc.constantFrom("x".repeat(300), "x".repeat(100_000), "a\u0000b.workflow", "\u001b[2J.workflow").map((name) => ({
      why: `file name ${JSON.stringify(name).slice(0, 30)} (${name.length})`,
      body: replaced(valid(), "workflow", file("fun a():\n    pass\n", name)),
    })),
    fc.constantFrom("ftp://x/", "javascript:alert(1)", "not a url", `http://x/${"a".repeat(2100)}`, "http://169.254.169.254/latest/meta-data/", "http://[::ffff:127.0.0.1]:5432/", "http://2130706433/", "http://localhost:6379/").map((url) => ({
      why: `callback_url ${url.slice(0, 30)}`,
      body: withField(withField(valid(), "callback_url", url), "callback_secret", "0123456789abcdef0"),
    })),
    form("callback_url without a secret", (f) => f.append("callback_url", "http://127.0.0.1:9/x")),
    form("callback_secret too short", (f) => {
      f.append("callback_url", "http://127.0.0.1:9/x");
      f.append("callback_secret", "short");
    }),
    form("callback_secret with NUL", (f) => {
      f.append("callback_url", "http://127.0.0.1:9/x");
      f.append("callback_secret", "0123456789abcdef\u0000");
    }),
    form("body over the limit", (f) => f.append("requirements", file("r".repeat(maxBytes + 1), "requirements.txt"))),
    fc.constantFrom("garbage", "--zzz\r\n", "--zzz\r\nContent-Disposition: form-data; name=\"workflow\"\r\n\r\nfun", "--zzz--", "").map((raw) => ({
      why: `broken multipart ${JSON.stringify(raw).slice(0, 20)}`,
      body: encoder.encode(raw),
      type: "multipart/form-data; boundary=zzz",
    })),
    fc.constant({ why: "multipart without a boundary", body: encoder.encode("x"), type: "multipart/form-data" }),
  ); // prettier-ignore
}

function withField(f: FormData, name: string, value: string | File): FormData {
  f.append(name, value);
  return f;
}

function replaced(f: FormData, name: string, value: string | File): FormData {
  f.delete(name);
  f.append(name, value);
  return f;
}

// ---- One operation's requests --------------------------------------------------------------------

interface Part {
  why: string;
  mustFail: boolean;
  apply(r: HostileRequest): void;
}

/** Hostile requests for one operation, as `headers` (credentials) would send them. */
export function hostileRequests(
  operation: Operation,
  real: RealValues,
  auth: Record<string, string>,
  limits: { maxRequestBytes: number; maxWebhookBytes: number },
): fc.Arbitrary<HostileRequest> {
  const { method, template, op } = operation;
  const params = pathParams(template);
  const query = op.parameters.filter((p) => p.in === "query");
  const headers = op.parameters.filter((p) => p.in === "header" && BAD_HEADERS[p.name.toLowerCase()]);
  const contents = Object.entries(op.requestBody?.content ?? {});
  const maxBytes = template.startsWith("/hooks") ? limits.maxWebhookBytes : limits.maxRequestBytes;

  // Path values: each parameter real (when there is a real value) or hostile; `mustFail` if any is hostile.
  const path = fc.tuple(...params.map((p) => {
    const value = real.pathValue(template, p);
    const hostile = hostileSegment(value).map((s) => ({ param: p, value: s, hostile: true }));
    return value === undefined ? hostile : fc.oneof(hostile, fc.constant({ param: p, value: encodeURIComponent(value), hostile: false }));
  })).filter((values) => values.length === 0 || values.some((v) => v.hostile) || contents.length + query.length + headers.length > 0); // prettier-ignore

  const invalidations: fc.Arbitrary<Part>[] = [];
  for (const q of query) {
    invalidations.push(
      fc.constantFrom(...badQueryValues(q.schema)).map((v) => ({
        why: `query ${q.name}=${v.slice(0, 30)}`,
        mustFail: true,
        apply: (r) => void (r.path += `${r.path.includes("?") ? "&" : "?"}${q.name}=${v}`),
      })),
    );
  }
  for (const h of headers) {
    invalidations.push(
      fc.constantFrom(...BAD_HEADERS[h.name.toLowerCase()]!).map((v) => ({
        why: `header ${h.name}: ${JSON.stringify(v).slice(0, 30)}`,
        mustFail: true,
        apply: (r) => void (r.headers[h.name] = v),
      })),
    );
  }
  for (const [type, { schema }] of contents) {
    if (type === "application/json") {
      const valid = JSON.parse(real.validBody(template, method.toLowerCase(), type) as string) as JsonObject;
      const broken = brokenJson(schema, valid, maxBytes).map(({ why, body }) => ({
        why: `json: ${why}`,
        mustFail: true,
        apply: (r: HostileRequest) => {
          r.body = body;
          r.headers["content-type"] = "application/json";
        },
      }));
      const wrongType = fc.constantFrom(...WRONG_TYPES).map((t) => ({
        why: `content type ${t}`,
        mustFail: true,
        apply: (r: HostileRequest) => {
          r.body = JSON.stringify(valid);
          r.headers["content-type"] = t;
        },
      }));
      invalidations.push(fc.oneof({ weight: 6, arbitrary: broken }, { weight: 1, arbitrary: wrongType }));
    } else if (type === "multipart/form-data") {
      const valid = () => real.validBody(template, method.toLowerCase(), type) as FormData;
      invalidations.push(
        brokenForm(schema, valid, maxBytes).map(({ why, body, type: t }) => ({
          why: `multipart: ${why}`,
          mustFail: true,
          apply: (r) => {
            r.body = body;
            if (t) r.headers["content-type"] = t;
          },
        })),
      );
    } else {
      // Any bytes (webhooks): refused for their missing or forged signature, or their size.
      invalidations.push(
        fc.oneof({ weight: 6, arbitrary: fc.uint8Array({ maxLength: 2048 }) }, { weight: 1, arbitrary: fc.constant(new Uint8Array(maxBytes + 1)) }).chain((bytes) =>
          fc.constantFrom<Record<string, string>>(
            {},
            { "X-DWOP-Signature": "sha256=" + "0".repeat(64), "X-DWOP-Timestamp": String(Math.floor(Date.now() / 1000)), "X-DWOP-Delivery": "d1" },
            { "X-DWOP-Signature": "md5=x", "X-DWOP-Timestamp": "-1", "X-DWOP-Delivery": "" },
            { "X-DWOP-Signature": "sha256=", "X-DWOP-Timestamp": "9".repeat(13), "X-DWOP-Delivery": "d\u00e9" },
          ).map((sig) => ({
            why: `unsigned bytes (${bytes.length}) with ${JSON.stringify(sig).slice(0, 60)}`,
            mustFail: true,
            apply: (r) => {
              r.body = bytes;
              Object.assign(r.headers, sig);
            },
          })),
        ), // prettier-ignore
      );
    }
  }

  const noise = fc.record({
    query: fc.subarray(NOISE_QUERY, { maxLength: 3 }),
    headers: fc.subarray(NOISE_HEADERS, { maxLength: 3 }),
  });
  const indexes = invalidations.map((_, i) => i);
  const chosen = fc.subarray(indexes, { minLength: 0, maxLength: Math.min(2, indexes.length) });

  return fc
    .tuple(path, chosen, noise)
    .chain(([values, picks, extra]) => {
      const hostilePath = values.some((v) => v.hostile);
      // At least one refused part: a hostile path value, or one of the other invalidations.
      const need = hostilePath || invalidations.length === 0 ? picks : picks.length > 0 ? picks : [0];
      return fc.tuple(
        fc.constant(values),
        fc.constant(extra),
        fc.tuple(...need.map((i) => invalidations[i]!)),
      );
    })
    .map(([values, extra, parts]) => {
      let path = template;
      for (const v of values) path = path.replace(`{${v.param}}`, v.value);
      const r: HostileRequest = {
        // How fast-check prints a counterexample: short, whatever the request's size.
        [fc.toStringMethod]: () => describeRequest(r),
        why: values.filter((v) => v.hostile).map((v) => `path ${v.param}=${v.value.slice(0, 40)}`),
        method,
        path,
        headers: { ...(op.security.length > 0 ? auth : {}) },
        mustFail: values.some((v) => v.hostile),
      };
      for (const part of parts) {
        part.apply(r);
        r.why.push(part.why);
        r.mustFail ||= part.mustFail;
      }
      if (extra.query.length > 0) r.path += `${r.path.includes("?") ? "&" : "?"}${extra.query.join("&")}`;
      for (const [name, value] of extra.headers) r.headers[name] = value;
      // A write with a body needs one even when only its path is hostile.
      if (r.body === undefined && contents.length > 0 && method !== "GET") {
        const [type] = contents[0]!;
        const body = real.validBody(template, method.toLowerCase(), type);
        if (type === "application/json" || type === "multipart/form-data") r.body = body;
        else r.body = "{}";
        if (type === "application/json") r.headers["content-type"] = type;
      }
      return r;
    });
}
