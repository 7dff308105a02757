import { ApiError, call, postJson } from "./api.ts";
import { fill, h } from "./dom.ts";
import { caretLines, codeEditor } from "./editor.ts";
import { dagView } from "./graph.ts";
import type { Page } from "./router.ts";
import type { DslErrorInfo, ValidatedWorkflow, WorkflowDetail } from "./types.ts";

const VALIDATE_AFTER_MS = 300;

/** `report.workflow` → `report`; anything else becomes a safe name. */
function nameFromFile(file: string): string {
  const name = file.replace(/\.(workflow|txt|py)$/i, "").replace(/[^\w.-]+/g, "_");
  return name.slice(0, 100) || "workflow";
}

/** The DSL errors of an API error (400 invalid_workflow), or null for any other error. */
function dslErrors(err: unknown): DslErrorInfo[] | null {
  if (err instanceof ApiError && err.code === "invalid_workflow" && Array.isArray(err.details)) {
    return err.details as DslErrorInfo[];
  }
  return null;
}

/**
 * Submitting a workflow: upload or paste it (and a requirements.txt), see its DSL errors at their line
 * and column and its DAG as you type (the server parses it with `POST /validate`; nothing is stored),
 * give the inputs it reads, and submit. Submit stays disabled while the workflow has errors.
 */
export function submitPage(root: HTMLElement): Page {
  return new SubmitPage(root);
}

class SubmitPage implements Page {
  private readonly editor = codeEditor("workflow-source", 18, 'fun hello():\n    print("hello")');
  private readonly workflowFile = h("input", {
    id: "workflow-file",
    type: "file",
    accept: ".workflow,.txt,.py,text/plain",
  });
  private readonly name = h("input", {
    id: "workflow-name",
    type: "text",
    value: "workflow",
    pattern: "[\\w.\\-]{1,100}",
    required: true,
  });
  private readonly requirements = h("textarea", {
    id: "requirements",
    rows: 4,
    spellcheck: "false",
    wrap: "off",
    placeholder: "one requirement a line, as pip reads them",
  });
  private readonly requirementsFile = h("input", {
    id: "requirements-file",
    type: "file",
    accept: ".txt,text/plain",
  });
  private readonly state = h("p", { class: "validation", role: "status", "aria-live": "polite" });
  private readonly errorList = h("ol", { class: "dsl-errors", "aria-label": "Errors in the workflow" });
  private readonly inputsBox = h("fieldset", { class: "inputs", hidden: true });
  private readonly preview = h("div", { class: "preview" });
  private readonly submit = h("button", { type: "submit", class: "primary", disabled: true }, "Submit");
  private readonly failure = h("p", { class: "callout failure", role: "alert", hidden: true });
  private readonly form: HTMLFormElement;
  private nameTouched = false;
  /** The last valid parse, and the text it was of: Submit sends only what was checked. */
  private validated: ValidatedWorkflow | null = null;
  private validatedText = "";
  private seq = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private previewKey = "";

  constructor(root: HTMLElement) {
    this.form = this.layout();
    fill(root, this.form);
    this.listen();
    document.title = "Submit · DWOP";
    void this.validate();
    root.querySelector<HTMLElement>("h1")?.focus({ preventScroll: true });
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.seq++;
  }

  private layout(): HTMLFormElement {
    const row = (forId: string, text: string, input: HTMLElement) =>
      h("div", { class: "field-row" }, h("label", { for: forId }, text), input);
    return h(
      "form",
      { class: "submit-form" },
      h("div", { class: "page-head" }, h("h1", { tabindex: -1 }, "Submit a workflow")),
      h(
        "div",
        { class: "submit-grid" },
        h(
          "section",
          { class: "panel" },
          row("workflow-file", "Workflow file", this.workflowFile),
          h("label", { for: "workflow-source" }, "Workflow (paste or edit)"),
          this.editor.element,
          this.state,
          this.errorList,
        ),
        h(
          "section",
          { class: "panel" },
          h("label", { for: "workflow-name" }, "Name"),
          this.name,
          row("requirements-file", "requirements.txt file", this.requirementsFile),
          h("label", { for: "requirements" }, "Requirements (optional)"),
          this.requirements,
          this.inputsBox,
          this.failure,
          h("div", { class: "actions" }, this.submit),
          h("h2", {}, "Graph"),
          this.preview,
        ),
      ),
    );
  }

  private listen(): void {
    this.editor.textarea.addEventListener("input", () => this.later());
    this.name.addEventListener("input", () => (this.nameTouched = true));
    this.workflowFile.addEventListener("change", async () => {
      const file = this.workflowFile.files?.[0];
      if (!file) return;
      this.editor.textarea.value = await file.text();
      this.editor.refresh();
      if (!this.nameTouched) this.name.value = nameFromFile(file.name);
      void this.validate();
    });
    this.requirementsFile.addEventListener("change", async () => {
      const file = this.requirementsFile.files?.[0];
      if (file) this.requirements.value = await file.text();
    });
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.send();
    });
  }

  private later(): void {
    this.submit.disabled = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.validate(), VALIDATE_AFTER_MS);
  }

  private showErrors(source: string, errors: DslErrorInfo[]): void {
    this.editor.markErrors(errors);
    fill(
      this.errorList,
      errors.map((e) =>
        h(
          "li",
          {},
          h(
            "button",
            { type: "button", class: "link", onclick: () => this.editor.goTo(e.line, e.column) },
            `Line ${e.line}, column ${e.column}`,
          ),
          h("span", { class: "message" }, e.message),
          h("pre", {}, caretLines(source, e.line, e.column)),
        ),
      ),
    );
  }

  /** A file field per input the workflow reads; files already chosen are kept. */
  private showInputs(names: string[]): void {
    const inputs = this.inputsBox.querySelectorAll<HTMLInputElement>("input");
    const before = new Map([...inputs].map((i) => [i.name, i]));
    this.inputsBox.hidden = names.length === 0;
    fill(
      this.inputsBox,
      h("legend", {}, "Inputs the workflow reads"),
      names.map((n) => {
        const input =
          before.get(`inputs.${n}`) ??
          h("input", { type: "file", id: `input-${n}`, name: `inputs.${n}`, required: true });
        return h("div", { class: "field-row" }, h("label", { for: `input-${n}` }, `inputs.${n}`), input);
      }),
    );
  }

  private showPreview(v: ValidatedWorkflow): void {
    const key = JSON.stringify(v.tasks.map((t) => [t.name, t.params]));
    if (key === this.previewKey) return;
    this.previewKey = key;
    const view = dagView(
      v.tasks.map((t) => ({ ...t, status: "preview", attempt: 0 })),
      (task) => this.editor.goTo(v.tasks.find((t) => t.name === task)?.line ?? 1, 1),
    );
    fill(this.preview, view.element);
  }

  private async validate(): Promise<void> {
    // A check typed for earlier is superseded by this one, and Submit waits for its answer: a debounced
    // check firing after a file was read (and checked) used to leave Submit enabled with nothing
    // validated, so a click then did nothing.
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.submit.disabled = true;
    const source = this.editor.textarea.value;
    const mine = ++this.seq;
    this.validated = null;
    if (!source.trim()) {
      this.state.className = "validation";
      this.state.textContent = "Paste a workflow or choose its file.";
      this.showErrors(source, []);
      this.submit.disabled = true;
      return;
    }
    try {
      const file = `${this.name.value || "workflow"}.workflow`;
      const result = await postJson<ValidatedWorkflow>("validate", { workflow: source, file });
      if (mine !== this.seq) return;
      this.validated = result;
      this.validatedText = source;
      const n = result.tasks.length;
      const reads = result.inputs.map((i) => `inputs.${i}`).join(", ");
      this.state.className = "validation ok";
      this.state.textContent = `✓ Valid: ${n} task${n === 1 ? "" : "s"}${reads ? `, reads ${reads}` : ""}.`;
      this.showErrors(source, []);
      this.showInputs(result.inputs);
      this.showPreview(result);
    } catch (err) {
      if (mine !== this.seq) return;
      const errors = dslErrors(err);
      if (errors) {
        const n = errors.length;
        this.state.className = "validation bad";
        this.state.textContent = `✗ ${n} error${n === 1 ? "" : "s"}: fix ${n === 1 ? "it" : "them"} to submit.`;
        this.showErrors(source, errors);
      } else {
        this.state.className = "validation";
        this.state.textContent = `Could not check the workflow: ${(err as Error).message}`;
      }
    }
    this.submit.disabled = this.validated === null;
  }

  private async send(): Promise<void> {
    const source = this.editor.textarea.value;
    if (!this.validated || this.validatedText !== source || !this.form.reportValidity()) return;
    this.submit.disabled = true;
    this.failure.hidden = true;
    const body = new FormData();
    body.set("workflow", new File([source], `${this.name.value}.workflow`, { type: "text/plain" }));
    if (this.requirements.value.trim()) {
      body.set(
        "requirements",
        new File([this.requirements.value], "requirements.txt", { type: "text/plain" }),
      );
    }
    for (const input of this.inputsBox.querySelectorAll<HTMLInputElement>("input[type=file]")) {
      const file = input.files?.[0];
      if (file) body.set(input.name, file);
    }
    try {
      const res = await call("workflows", { method: "POST", body });
      location.hash = `#/workflows/${((await res.json()) as WorkflowDetail).id}`;
    } catch (err) {
      const errors = dslErrors(err);
      if (errors) this.showErrors(source, errors);
      const fields =
        err instanceof ApiError && !errors && Array.isArray(err.details)
          ? (err.details as { path?: string; message?: string }[]).map((d) =>
              `${d.path ?? ""} ${d.message ?? ""}`.trim(),
            )
          : [];
      this.failure.hidden = false;
      this.failure.textContent = `${(err as Error).message}${fields.length ? `: ${fields.join("; ")}` : ""}`;
      this.submit.disabled = false;
    }
  }
}
