import { h } from "./dom.ts";
import type { Rect } from "./pan-zoom.ts";

/** A node as the overview draws it: its box and the state that colors it. */
export interface MiniItem extends Rect {
  state: string;
  frame?: boolean;
}

const MAX_W = 200;
const MAX_H = 140;

/** CSS variable of each state's color (styles.css). */
const COLOR_VAR: Record<string, string> = {
  pending: "--pending",
  queued: "--queued",
  dispatched: "--running",
  running: "--running",
  succeeded: "--succeeded",
  failed: "--failed",
  upstream_failed: "--upstream",
  cancelled: "--cancelled",
};

/**
 * The overview of a drawing too big for its box: every node as a colored dot on a canvas (one draw,
 * however many nodes), the part in view as a rectangle over it. Pressing or dragging on it moves the view.
 */
export class Minimap {
  readonly element: HTMLElement;
  private readonly canvas = h("canvas", { "aria-hidden": "true" });
  private readonly window = h("div", { class: "minimap-view" });
  private items: MiniItem[] = [];
  private ratio = 1;
  private frame = 0;
  private dragging = false;

  constructor(private readonly onMove: (at: { x: number; y: number }) => void) {
    this.element = h(
      "div",
      { class: "minimap", title: "Overview: press or drag to move the view" },
      this.canvas,
      this.window,
    );
    // Presses here move the view; they must not also start a pan or a pinch of the graph below.
    const stop = (e: Event) => e.stopPropagation();
    this.element.addEventListener("pointerdown", (e) => {
      stop(e);
      this.dragging = true;
      this.element.setPointerCapture(e.pointerId);
      this.moveTo(e);
    });
    this.element.addEventListener("pointermove", (e) => {
      stop(e);
      if (this.dragging) this.moveTo(e);
    });
    this.element.addEventListener("pointerup", (e) => {
      stop(e);
      this.dragging = false;
    });
    this.element.addEventListener("wheel", stop);
    this.element.addEventListener("click", stop);
  }

  /** The drawing's size and nodes; redrawn on the next frame. */
  setItems(width: number, height: number, items: MiniItem[]): void {
    this.ratio = Math.min(MAX_W / width, MAX_H / height);
    this.items = items;
    const w = Math.max(1, Math.round(width * this.ratio));
    const hgt = Math.max(1, Math.round(height * this.ratio));
    this.element.style.width = `${w}px`;
    this.element.style.height = `${hgt}px`;
    this.redraw();
  }

  /** Item states changed: redraw on the next frame. */
  redraw(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  /** Shows the part of the drawing in view; the overview hides while everything is in view. */
  setView(view: Rect, everything: boolean): void {
    this.element.hidden = everything;
    if (everything) return;
    const r = this.ratio;
    const s = this.window.style;
    s.left = `${view.x * r}px`;
    s.top = `${view.y * r}px`;
    s.width = `${view.w * r}px`;
    s.height = `${view.h * r}px`;
  }

  private draw(): void {
    const dpr = window.devicePixelRatio || 1;
    const w = parseFloat(this.element.style.width);
    const hgt = parseFloat(this.element.style.height);
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(hgt * dpr);
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return;
    const css = getComputedStyle(this.element);
    const colors = new Map<string, string>();
    const color = (state: string) => {
      let c = colors.get(state);
      if (c === undefined) {
        c = css.getPropertyValue(COLOR_VAR[state] ?? "--pending").trim() || "#999";
        colors.set(state, c);
      }
      return c;
    };
    ctx.setTransform(dpr * this.ratio, 0, 0, dpr * this.ratio, 0, 0);
    ctx.clearRect(0, 0, w / this.ratio, hgt / this.ratio);
    for (const it of this.items) {
      if (it.frame) {
        ctx.strokeStyle = "#8c959f";
        ctx.lineWidth = 1 / this.ratio;
        ctx.strokeRect(it.x, it.y, it.w, it.h);
        continue;
      }
      ctx.fillStyle = color(it.state);
      ctx.fillRect(it.x, it.y, it.w, it.h);
    }
  }

  private moveTo(e: PointerEvent): void {
    const r = this.element.getBoundingClientRect();
    this.onMove({ x: (e.clientX - r.left) / this.ratio, y: (e.clientY - r.top) / this.ratio });
  }
}
