/**
 * The simulated etcd plus watch cache: every object of every kind, one monotonic resourceVersion counter
 * across all of them, and a bounded window of past events from which a watch can resume.
 *
 * Events are delivered to listeners strictly in resourceVersion order. A listener that writes (the job
 * controller reacting to a pod change) only queues its events; they go out after the current one has
 * reached every listener, as an API server's watchers would see them.
 */
import { randomUUID } from "node:crypto";
import type { Kind, KubeObject } from "./types.ts";

export type EventType = "ADDED" | "MODIFIED" | "DELETED";

export interface StoreEvent {
  rv: number;
  type: EventType;
  kind: Kind;
  namespace: string;
  /** The object after the change (for DELETED: its last state, at the deletion's resourceVersion). */
  object: KubeObject;
  /** The object before the change; for MODIFIED and DELETED. */
  previous?: KubeObject;
}

export type StoreListener = (event: StoreEvent) => void;

/** Where a watch resumes: the events it missed, or "expired" when the window no longer holds them. */
export type Replay = StoreEvent[] | { expired: true; oldest: number };

const key = (kind: Kind, namespace: string, name: string) => `${kind}/${namespace}/${name}`;

export function now(): string {
  // The API serialises times with second precision (RFC 3339, no fraction).
  return new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
}

export class ObjectStore {
  private rv = 0;
  private readonly objects = new Map<string, KubeObject>();
  private history: StoreEvent[] = [];
  /** Every event with rv <= compacted has left the window. */
  private compacted = 0;
  private readonly listeners = new Set<StoreListener>();
  private readonly queue: StoreEvent[] = [];
  private draining = false;

  constructor(private historySize: number) {}

  get resourceVersion(): number {
    return this.rv;
  }

  get<T extends KubeObject>(kind: T["kind"], namespace: string, name: string): T | undefined {
    const found = this.objects.get(key(kind, namespace, name));
    return found ? (structuredClone(found) as T) : undefined;
  }

  /**
   * Objects of a kind, in one namespace or all, sorted by namespace then name as etcd lists them.
   * `filter` sees the stored objects (it must not change them), so only the matches are copied.
   */
  list<T extends KubeObject>(
    kind: T["kind"],
    namespace?: string,
    filter: (object: T) => boolean = () => true,
  ): T[] {
    const prefix = namespace === undefined ? `${kind}/` : `${kind}/${namespace}/`;
    return [...this.objects.entries()]
      .filter(([k, o]) => k.startsWith(prefix) && filter(o as T))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => structuredClone(o) as T);
  }

  /** Stores a new object, stamping uid, resourceVersion and creationTimestamp; false when the name is taken. */
  create<T extends KubeObject>(object: T): T | undefined {
    const { namespace = "", name = "" } = object.metadata;
    const k = key(object.kind, namespace, name);
    if (this.objects.has(k)) return undefined;
    const stored = structuredClone(object);
    stored.metadata.uid ??= randomUUID();
    stored.metadata.creationTimestamp ??= now();
    stored.metadata.resourceVersion = String(++this.rv);
    this.objects.set(k, stored);
    this.emit({ rv: this.rv, type: "ADDED", kind: stored.kind, namespace, object: structuredClone(stored) });
    return structuredClone(stored);
  }

  /** Applies `change` to a copy of the object and stores it under a new resourceVersion. */
  update<T extends KubeObject>(
    kind: T["kind"],
    namespace: string,
    name: string,
    change: (object: T) => void,
  ): T | undefined {
    const k = key(kind, namespace, name);
    const current = this.objects.get(k) as T | undefined;
    if (!current) return undefined;
    const next = structuredClone(current);
    change(next);
    next.metadata.resourceVersion = String(++this.rv);
    this.objects.set(k, next);
    this.emit({
      rv: this.rv,
      type: "MODIFIED",
      kind,
      namespace,
      object: structuredClone(next),
      previous: current,
    });
    return structuredClone(next);
  }

  remove<T extends KubeObject>(kind: T["kind"], namespace: string, name: string): T | undefined {
    const k = key(kind, namespace, name);
    const current = this.objects.get(k) as T | undefined;
    if (!current) return undefined;
    this.objects.delete(k);
    const last = structuredClone(current);
    last.metadata.resourceVersion = String(++this.rv);
    this.emit({ rv: this.rv, type: "DELETED", kind, namespace, object: last, previous: current });
    return structuredClone(last);
  }

  /** Events after `rv`, or "expired" when some of them have left the window. */
  since(rv: number): Replay {
    if (rv < this.compacted) return { expired: true, oldest: this.compacted + 1 };
    return this.history.filter((e) => e.rv > rv);
  }

  /** Drops the whole window: a watch from any resourceVersion but the current one gets 410. */
  expireHistory(): void {
    this.history = [];
    this.compacted = this.rv;
  }

  setHistorySize(size: number): void {
    this.historySize = size;
    this.trim();
  }

  subscribe(listener: StoreListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private trim(): void {
    const excess = this.history.length - this.historySize;
    if (excess <= 0) return;
    const dropped = this.history.splice(0, excess);
    this.compacted = dropped[dropped.length - 1]!.rv;
  }

  private emit(event: StoreEvent): void {
    this.history.push(event);
    this.trim();
    this.queue.push(event);
    if (this.draining) return;
    this.draining = true;
    try {
      for (let next = this.queue.shift(); next; next = this.queue.shift()) {
        for (const listener of [...this.listeners]) {
          try {
            listener(next);
          } catch (err) {
            // A broken listener must not starve the others of events; the test sees the stack.
            console.error("kube-sim: store listener failed", err);
          }
        }
      }
    } finally {
      this.draining = false;
    }
  }
}
