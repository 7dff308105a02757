/**
 * Zoom and pan of one drawing inside a fixed box: the drawing is moved by a CSS transform on its element,
 * set at most once per animation frame, so panning and zooming never lay the graph out again and cost
 * the same for 10 nodes or 1,000.
 *
 * Mouse: drag to pan, the wheel scrolls the drawing (and the page once the drawing is at its end),
 * Ctrl or ⌘ with the wheel zooms at the pointer. Touch: one finger pans, two pinch. A drag never ends in
 * a click on the node it started on.
 */

export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

const MAX_SCALE = 3;
/** Movement (px) after which a press is a drag, not a click. */
const DRAG_SLOP = 4;
/** How much of the drawing may be pulled past the box's edge. */
const OVERSCROLL = 40;
/** How long after the last move the drawing is drawn again at its new scale. */
const SETTLE_MS = 200;

export class PanZoom {
  scale = 1;
  x = 0;
  y = 0;
  /** Whether the user moved the view since the last fit (a resize then keeps their view). */
  moved = false;
  private width = 0;
  private height = 0;
  private minScale = 0.1;
  private frame = 0;
  private settle: ReturnType<typeof setTimeout> | null = null;
  private readonly pointers = new Map<number, { x: number; y: number }>();
  private pressed: { x: number; y: number } | null = null;
  private dragged = false;

  constructor(
    private readonly box: HTMLElement,
    private readonly target: SVGElement | HTMLElement,
    private readonly onChange: () => void,
  ) {
    box.addEventListener("wheel", this.onWheel, { passive: false });
    box.addEventListener("pointerdown", this.onDown);
    box.addEventListener("pointermove", this.onMove);
    box.addEventListener("pointerup", this.onUp);
    box.addEventListener("pointercancel", this.onUp);
    // A drag that ends over a node is not a click on it.
    box.addEventListener(
      "click",
      (e) => {
        if (!this.dragged) return;
        this.dragged = false;
        e.stopPropagation();
        e.preventDefault();
      },
      true,
    );
  }

  /** The drawing's size in its own units; zooming out stops where it is a quarter of the fit. */
  setContent(width: number, height: number): void {
    this.width = width;
    this.height = height;
    this.minScale = Math.min(0.5, this.fitScale() / 4);
  }

  private view() {
    return { w: this.box.clientWidth, h: this.box.clientHeight };
  }

  fitScale(): number {
    const v = this.view();
    if (!this.width || !this.height || !v.w || !v.h) return 1;
    return Math.min(1, v.w / this.width, v.h / this.height);
  }

  /** The whole drawing, centred, at the largest scale up to 100%. */
  fit(): void {
    this.scale = this.fitScale();
    this.x = this.y = Number.NEGATIVE_INFINITY;
    this.moved = false;
    this.apply();
  }

  /** `scale`, with the drawing's point `at` (its own units) at the box's top left, less a margin. */
  showAt(scale: number, at: { x: number; y: number }): void {
    this.scale = this.bound(scale);
    this.x = -at.x * this.scale;
    this.y = -at.y * this.scale;
    this.apply();
  }

  /** Zooms by `factor` keeping the box point `around` (the centre by default) still. */
  zoomBy(factor: number, around?: { x: number; y: number }): void {
    this.zoomTo(this.scale * factor, around);
  }

  zoomTo(scale: number, around?: { x: number; y: number }): void {
    const v = this.view();
    const p = around ?? { x: v.w / 2, y: v.h / 2 };
    const next = this.bound(scale);
    const cx = (p.x - this.x) / this.scale;
    const cy = (p.y - this.y) / this.scale;
    this.scale = next;
    this.x = p.x - cx * next;
    this.y = p.y - cy * next;
    this.moved = true;
    this.apply();
  }

  panBy(dx: number, dy: number): void {
    this.x += dx;
    this.y += dy;
    this.moved = true;
    this.apply();
  }

  /** Centres the view on the drawing's point `at`. */
  centerOn(at: { x: number; y: number }): void {
    const v = this.view();
    this.x = v.w / 2 - at.x * this.scale;
    this.y = v.h / 2 - at.y * this.scale;
    this.moved = true;
    this.apply();
  }

  /** Pans the least that brings `r` (drawing units) into view, with a margin. */
  reveal(r: Rect): void {
    const v = this.view();
    const m = 16;
    const left = this.x + r.x * this.scale;
    const top = this.y + r.y * this.scale;
    const right = left + r.w * this.scale;
    const bottom = top + r.h * this.scale;
    let dx = 0;
    let dy = 0;
    if (right > v.w - m) dx = v.w - m - right;
    if (left + dx < m) dx = m - left;
    if (bottom > v.h - m) dy = v.h - m - bottom;
    if (top + dy < m) dy = m - top;
    if (dx || dy) {
      this.x += dx;
      this.y += dy;
      this.apply();
    }
  }

  /** The part of the drawing in view, in its own units. */
  visible(): Rect {
    const v = this.view();
    return { x: -this.x / this.scale, y: -this.y / this.scale, w: v.w / this.scale, h: v.h / this.scale };
  }

  private bound(scale: number): number {
    return Math.min(MAX_SCALE, Math.max(this.minScale, scale));
  }

  /** Keeps the drawing in the box: centred along an axis where it fits, else never pulled far past an edge. */
  private clamp(): void {
    const v = this.view();
    const w = this.width * this.scale;
    const h = this.height * this.scale;
    const axis = (pos: number, size: number, room: number) =>
      size <= room
        ? (room - size) / 2
        : Math.min(OVERSCROLL, Math.max(room - size - OVERSCROLL, Number.isFinite(pos) ? pos : 0));
    this.x = axis(this.x, w, v.w);
    this.y = axis(this.y, h, v.h);
  }

  private apply(): void {
    this.clamp();
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.clamp();
      // While the view moves, the drawing is a layer of its own that the compositor moves as a picture:
      // a frame costs the same for 1,000 nodes as for 10. Once still, it is drawn again, sharp at its scale.
      this.target.style.willChange = "transform";
      if (this.settle) clearTimeout(this.settle);
      this.settle = setTimeout(() => {
        this.settle = null;
        this.target.style.willChange = "";
      }, SETTLE_MS);
      this.target.style.transform = `translate(${this.x}px, ${this.y}px) scale(${this.scale})`;
      this.onChange();
    });
  }

  private readonly onWheel = (e: WheelEvent): void => {
    const unit = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? this.box.clientHeight : 1;
    if (e.ctrlKey || e.metaKey) {
      // A trackpad's pinch arrives as a wheel event with ctrlKey.
      e.preventDefault();
      this.zoomBy(Math.exp(-e.deltaY * unit * 0.0025), this.local(e));
      return;
    }
    const before = { x: this.x, y: this.y };
    this.x -= e.deltaX * unit;
    this.y -= e.deltaY * unit;
    this.clamp();
    // At the drawing's end the wheel scrolls the page, as in any scrolling box.
    if (this.x === before.x && this.y === before.y) return;
    e.preventDefault();
    this.moved = true;
    this.apply();
  };

  private local(e: { clientX: number; clientY: number }) {
    const r = this.box.getBoundingClientRect();
    return { x: e.clientX - r.left, y: e.clientY - r.top };
  }

  private readonly onDown = (e: PointerEvent): void => {
    if (e.pointerType === "mouse" && e.button !== 0) return;
    this.pointers.set(e.pointerId, this.local(e));
    if (this.pointers.size === 1) {
      this.pressed = this.local(e);
      this.dragged = false;
    }
  };

  private readonly onMove = (e: PointerEvent): void => {
    const last = this.pointers.get(e.pointerId);
    if (!last) return;
    const now = this.local(e);
    if (this.pointers.size >= 2) {
      const [a, b] = [...this.pointers.values()];
      const other = a === last ? b! : a!;
      const before = Math.hypot(last.x - other.x, last.y - other.y);
      const after = Math.hypot(now.x - other.x, now.y - other.y);
      this.pointers.set(e.pointerId, now);
      this.dragged = true;
      if (before > 0) this.zoomBy(after / before, { x: (now.x + other.x) / 2, y: (now.y + other.y) / 2 });
      return;
    }
    this.pointers.set(e.pointerId, now);
    if (!this.dragged && this.pressed) {
      if (Math.hypot(now.x - this.pressed.x, now.y - this.pressed.y) < DRAG_SLOP) return;
      this.dragged = true;
      this.box.classList.add("panning");
      this.box.setPointerCapture(e.pointerId);
    }
    this.panBy(now.x - last.x, now.y - last.y);
  };

  private readonly onUp = (e: PointerEvent): void => {
    this.pointers.delete(e.pointerId);
    if (this.box.hasPointerCapture(e.pointerId)) this.box.releasePointerCapture(e.pointerId);
    if (this.pointers.size === 0) {
      this.pressed = null;
      this.box.classList.remove("panning");
    }
  };
}
