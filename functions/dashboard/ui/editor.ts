import { fill, h } from "./dom.ts";
import type { DslErrorInfo } from "./types.ts";

export interface CodeEditor {
  element: HTMLElement;
  textarea: HTMLTextAreaElement;
  /** Marks the lines that have errors in the gutter. */
  markErrors(errors: readonly DslErrorInfo[]): void;
  /** Puts the caret at a 1-based line and column and scrolls there. */
  goTo(line: number, column: number): void;
  /** Call after setting the text from code. */
  refresh(): void;
}

/**
 * A plain textarea with a line-number gutter: no wrapping, so gutter and lines stay aligned. Tab keeps
 * moving the focus (the keyboard must be able to leave the editor); indent with spaces.
 */
export function codeEditor(id: string, rows: number, placeholder: string): CodeEditor {
  const textarea = h("textarea", {
    id,
    rows,
    wrap: "off",
    spellcheck: "false",
    autocapitalize: "off",
    autocomplete: "off",
    placeholder,
  });
  const gutter = h("div", { class: "gutter", "aria-hidden": "true" });
  const element = h("div", { class: "editor" }, gutter, textarea);
  let marked = new Map<number, string>();
  let lines = 0;

  function refresh(): void {
    const count = Math.max(1, textarea.value.split(/\r\n|\r|\n/).length);
    if (count === lines && gutter.childElementCount === count) return paint();
    lines = count;
    fill(
      gutter,
      Array.from({ length: count }, (_, i) => h("div", {}, String(i + 1))),
    );
    paint();
  }

  function paint(): void {
    [...gutter.children].forEach((el, i) => {
      const message = marked.get(i + 1);
      el.classList.toggle("error", message !== undefined);
      if (message) el.setAttribute("title", message);
      else el.removeAttribute("title");
    });
    gutter.scrollTop = textarea.scrollTop;
  }

  textarea.addEventListener("input", refresh);
  textarea.addEventListener("scroll", () => (gutter.scrollTop = textarea.scrollTop));
  refresh();

  return {
    element,
    textarea,
    refresh,
    markErrors(errors) {
      marked = new Map();
      for (const e of errors) marked.set(e.line, [marked.get(e.line), e.message].filter(Boolean).join("\n"));
      paint();
    },
    goTo(line, column) {
      const all = textarea.value.split(/(?<=\r\n|\r|\n)/);
      const offset = all.slice(0, line - 1).reduce((n, l) => n + l.length, 0) + column - 1;
      textarea.focus();
      textarea.setSelectionRange(offset, offset);
      const lineHeight = parseFloat(getComputedStyle(textarea).lineHeight) || 18;
      textarea.scrollTop = Math.max(0, (line - 3) * lineHeight);
    },
  };
}

/** The offending line and a caret under the column, as `dwop validate` prints it. */
export function caretLines(source: string, line: number, column: number): string {
  const text = source.split(/\r\n|\r|\n/)[line - 1] ?? "";
  const pad = [...text.slice(0, column - 1)].map((ch) => (ch === "\t" ? "\t" : " ")).join("");
  return `${text}\n${pad}^`;
}
