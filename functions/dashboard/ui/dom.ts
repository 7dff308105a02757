// Building DOM nodes without innerHTML: every string becomes a text node or an attribute value.

type Attr = string | number | boolean | null | undefined | ((event: Event) => void);
export type Child = Node | string | number | null | undefined | false | Child[];

/** The characters that reorder the text around them without being seen (bidi embeddings, overrides, isolates). */
const BIDI_CONTROLS = /[\u202a-\u202e\u2066-\u2069]/g;

/**
 * Text as shown on the page: each invisible bidi control shown as its code point (`⟨U+202E⟩`), so that a
 * task's log, output or error cannot make what it says read otherwise than it is (Trojan Source).
 */
export function shown(text: string): string {
  return text.replace(BIDI_CONTROLS, (c) => `⟨U+${c.charCodeAt(0).toString(16).toUpperCase()}⟩`);
}

function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else
      parent.appendChild(typeof child === "object" ? child : document.createTextNode(shown(String(child))));
  }
}

function apply(el: Element, attrs: Record<string, Attr>): void {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === "function") el.addEventListener(key.slice(2).toLowerCase(), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
}

/** An HTML element: `h("a", { href: "#/" }, "text", child)`; `onclick` and the like add listeners. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, Attr> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** An SVG element, as `h` makes HTML ones. */
export function s<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, Attr> = {},
  ...children: Child[]
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

/** Replaces an element's children. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/**
 * Re-renders `el` with `render()` and puts the keyboard focus back on the element that had it (found
 * again by its `data-key`), so live updates do not throw a keyboard user out of a list.
 */
export function rerender(el: Element, render: () => Child): void {
  const active = document.activeElement;
  const key = active instanceof HTMLElement || active instanceof SVGElement ? active.dataset.key : undefined;
  const hadFocus = active !== null && el.contains(active);
  fill(el, render());
  if (hadFocus && key !== undefined) {
    const again = el.querySelector<HTMLElement | SVGElement>(`[data-key="${CSS.escape(key)}"]`);
    again?.focus({ preventScroll: true });
  }
}
