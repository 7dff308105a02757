/** Label and field selectors, parsed as the API server parses them (a subset of its grammar). */
import { badRequest } from "./status.ts";
import type { KubeObject } from "./types.ts";

type Requirement =
  | { key: string; op: "=" | "!="; value: string }
  | { key: string; op: "in" | "notin"; values: string[] }
  | { key: string; op: "exists" | "!exists" };

export type Selector = (object: KubeObject) => boolean;

export const everything: Selector = () => true;

/** Splits on commas that are not inside `( )`. */
function splitTop(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "(") depth++;
    else if (c === ")") depth--;
    else if (c === "," && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p !== "");
}

const KEY = String.raw`[A-Za-z0-9][-A-Za-z0-9_./]*`;
const SET_RE = new RegExp(String.raw`^(${KEY})\s+(in|notin)\s*\(([^)]*)\)$`);
const EQ_RE = new RegExp(String.raw`^(${KEY})\s*(==|=|!=)\s*([-A-Za-z0-9_.]*)$`);
const EXISTS_RE = new RegExp(String.raw`^(!?)\s*(${KEY})$`);

function parseRequirement(text: string, whole: string): Requirement {
  const set = SET_RE.exec(text);
  if (set) {
    const values = (set[3] ?? "").split(",").map((v) => v.trim());
    return { key: set[1]!, op: set[2] as "in" | "notin", values };
  }
  const eq = EQ_RE.exec(text);
  if (eq) return { key: eq[1]!, op: eq[2] === "!=" ? "!=" : "=", value: eq[3]! };
  const ex = EXISTS_RE.exec(text);
  if (ex) return { key: ex[2]!, op: ex[1] ? "!exists" : "exists" };
  throw badRequest(`unable to parse requirement: found '${text}' in label selector "${whole}"`);
}

function matches(req: Requirement, labels: Record<string, string>): boolean {
  const has = Object.hasOwn(labels, req.key);
  const value = labels[req.key];
  switch (req.op) {
    case "=":
      return has && value === req.value;
    case "!=":
      return !has || value !== req.value;
    case "in":
      return has && req.values.includes(value!);
    case "notin":
      return !has || !req.values.includes(value!);
    case "exists":
      return has;
    case "!exists":
      return !has;
  }
}

/** Parses `a=b,c!=d,e in (x,y),f,!g`; throws a 400 ApiError on bad syntax. */
export function parseLabelSelector(text: string | null | undefined): Selector {
  if (!text) return everything;
  const reqs = splitTop(text).map((part) => parseRequirement(part, text));
  return (object) => {
    const labels = object.metadata.labels ?? {};
    return reqs.every((r) => matches(r, labels));
  };
}

function fieldValue(object: KubeObject, field: string): string | undefined {
  switch (field) {
    case "metadata.name":
      return object.metadata.name;
    case "metadata.namespace":
      return object.metadata.namespace;
    case "status.phase":
      return object.kind === "Pod" ? object.status.phase : undefined;
    case "spec.nodeName":
      return object.kind === "Pod" ? (object.spec.nodeName ?? "") : undefined;
    default:
      return undefined;
  }
}

const FIELDS: Record<string, string[]> = {
  Job: ["metadata.name", "metadata.namespace"],
  Pod: ["metadata.name", "metadata.namespace", "status.phase", "spec.nodeName"],
};

/** Parses `metadata.name=x,status.phase!=Running` for the fields the real API supports on that kind. */
export function parseFieldSelector(text: string | null | undefined, kind: "Job" | "Pod"): Selector {
  if (!text) return everything;
  const reqs = splitTop(text).map((part) => {
    const m = /^([a-zA-Z.]+)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (!m) throw badRequest(`invalid selector: '${text}'; can't understand '${part}'`);
    const field = m[1]!;
    if (!FIELDS[kind]!.includes(field)) {
      throw badRequest(`field label not supported: ${field}`);
    }
    return { field, negate: m[2] === "!=", value: m[3]! };
  });
  return (object) => reqs.every((r) => (fieldValue(object, r.field) === r.value) !== r.negate);
}

/** Both selectors at once. */
export function selectorFor(query: URLSearchParams, kind: "Job" | "Pod"): Selector {
  const labels = parseLabelSelector(query.get("labelSelector"));
  const fields = parseFieldSelector(query.get("fieldSelector"), kind);
  return (object) => labels(object) && fields(object);
}
