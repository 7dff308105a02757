import { ApiError, call, postJson } from "./api.ts";
import { caretLines, codeEditor } from "./editor.ts";
import { fill, h } from "./dom.ts";
import { dagView } from "./graph.ts";
import type { Page } from "./router.ts";
import type { DslErrorInfo, ValidatedWorkflow, WorkflowDetail } from "./types.ts";

const VALIDATE_AFTER_MS = 300;

/** `report.workflow` → `report`; anything else becomes a safe name. */
function nameFromFile(file: string): string {
  return file.replace(/\.(workflow|txt|py)$/i, "").replace(/[^\w.-]+/g, "_").slice(0, 100) || "workflow";
}

/**
 * Submitting a workflow: upload or paste it (and a requirements.txt), see its DSL errors at their line
 * and column and its DAG as you type (the server parses it with `POST /validate`; nothing is stored),
 * give the inputs it reads, and submit. Submit stays disabled while the workflow has errors.
 */
export function submitPage(root: HTMLElement): Page {
  const editor = codeEditor("workflow-source", 18, "fun hello():\n    print(\"hello\")");
  const workflowFile = h("input", { id: "workflow-file", type: "file", accept: ".workflow,.txt,.py,text/plain" });
  const name = h("input", { id: "workflow-name", type: "text", value: "workflow", pattern: "[\\w.\\-]{1,100}", required: true });
  let nameTouched = false;
  const requirements = h("textarea", { id: "requirements", rows: 4, spellcheck: "false", wrap: "off", placeholder: "one requirement a line, as pip reads them" });
  const requirementsFile = h("input", { id: "requirements-file", type: "file", accept: ".txt,text/plain" });
  const state = h("p", { class: "validation", role: "status", "aria-live": "polite" });
  const errorList = h("ol", { class: "dsl-errors", "aria-label": "Errors in the workflow" });
  const inputsBox = h("fieldset", { class: "inputs", hidden: true });
  const preview = h("div", { class: "preview" });
  const submit = h("button", { type: "submit", class: "primary", disabled: true }, "Submit");
  const failure = h("p", { class: "callout failure", role: "alert", hidden: true });

  const form = h(
    "form",
    { class: "submit-form" },
    h("div", { class: "page-head" }, h("h1", { tabindex: -1 }, "Submit a workflow")),
    h(
      "div",
      { class: "submit-grid" },
      h(
        "section",
        { class: "panel" },
        h("div", { class: "field-row" }, h("label", { for: "workflow-file" }, "Workflow file"), workflowFile),
        h("label", { for: "workflow-source" }, "Workflow (paste or edit)"),
        editor.element,
        state,
        errorList,
      ),
      h(
        "section",
        { class: "panel" },
        h("label", { for: "workflow-name" }, "Name"),
        name,
        h("div", { class: "field-row" }, h("label", { for: "requirements-file" }, "requirements.txt file"), requirementsFile),
        h("label", { for: "requirements" }, "Requirements (optional)"),
        requirements,
        inputsBox,
        failure,
        h("div", { class: "actions" }, submit),
        h("h2", {}, "Graph"),
        preview,
      ),
    ),
  );
  fill(root, form);

  let validated: ValidatedWorkflow | null = null;
  let validatedText = "";
  let seq = 0;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let previewKey = "";

  function showErrors(source: string, errors: DslErrorInfo[]): void {
    editor.markErrors(errors);
    fill(
      errorList,
      errors.map((e) =>
        h(
          "li",
          {},
          h(
            "button",
            { type: "button", class: "link", onclick: () => editor.goTo(e.line, e.column) },
            `Line ${e.line}, column ${e.column}`,
          ),
          h("span", { class: "message" }, e.message),
          h("pre", {}, caretLines(source, e.line, e.column)),
        ),
      ),
    );
  }

  function showInputs(names: string[]): void {
    const before = new Map([...inputsBox.querySelectorAll<HTMLInputElement>("input")].map((i) => [i.name, i]));
    inputsBox.hidden = names.length === 0;
    fill(
      inputsBox,
      h("legend", {}, "Inputs the workflow reads"),
      names.map((n) => {
        const input = before.get(`inputs.${n}`) ?? h("input", { type: "file", id: `input-${n}`, name: `inputs.${n}`, required: true });
        return h("div", { class: "field-row" }, h("label", { for: `input-${n}` }, `inputs.${n}`), input);
      }),
    );
  }

  function showPreview(v: ValidatedWorkflow): void {
    const key = JSON.stringify(v.tasks.map((t) => [t.name, t.params]));
    if (key === previewKey) return;
    previewKey = key;
    const view = dagView(
      v.tasks.map((t) => ({ ...t, status: "preview", attempt: 0 })),
      (task) => editor.goTo(v.tasks.find((t) => t.name === task)?.line ?? 1, 1),
    );
    fill(preview, view.element);
  }

  async function validate(): Promise<void> {
    const source = editor.textarea.value;
    const mine = ++seq;
    if (!source.trim()) {
      validated = null;
      state.textContent = "Paste a workflow or choose its file.";
      showErrors(source, []);
      submit.disabled = true;
      return;
    }
    try {
      const result = await postJson<ValidatedWorkflow>("validate", { workflow: source, file: `${name.value || "workflow"}.workflow` });
      if (mine !== seq) return;
      validated = result;
      validatedText = source;
      const n = result.tasks.length;
      state.className = "validation ok";
      state.textContent = `✓ Valid: ${n} task${n === 1 ? "" : "s"}${result.inputs.length ? `, reads ${result.inputs.map((i) => `inputs.${i}`).join(", ")}` : ""}.`;
      showErrors(source, []);
      showInputs(result.inputs);
      showPreview(result);
    } catch (err) {
      if (mine !== seq) return;
      validated = null;
      if (err instanceof ApiError && err.code === "invalid_workflow" && Array.isArray(err.details)) {
        const errors = err.details as DslErrorInfo[];
        state.className = "validation bad";
        state.textContent = `✗ ${errors.length} error${errors.length === 1 ? "" : "s"}: fix ${errors.length === 1 ? "it" : "them"} to submit.`;
        showErrors(source, errors);
      } else {
        state.className = "validation";
        state.textContent = `Could not check the workflow: ${(err as Error).message}`;
      }
    }
    submit.disabled = validated === null;
  }

  function later(): void {
    submit.disabled = true;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => void validate(), VALIDATE_AFTER_MS);
  }

  editor.textarea.addEventListener("input", later);
  name.addEventListener("input", () => (nameTouched = true));
  workflowFile.addEventListener("change", async () => {
    const file = workflowFile.files?.[0];
    if (!file) return;
    editor.textarea.value = await file.text();
    editor.refresh();
    if (!nameTouched) name.value = nameFromFile(file.name);
    void validate();
  });
  requirementsFile.addEventListener("change", async () => {
    const file = requirementsFile.files?.[0];
    if (file) requirements.value = await file.text();
  });

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    void send();
  });

  async function send(): Promise<void> {
    if (!validated || validatedText !== editor.textarea.value || !form.reportValidity()) return;
    submit.disabled = true;
    failure.hidden = true;
    const body = new FormData();
    body.set("workflow", new File([editor.textarea.value], `${name.value}.workflow`, { type: "text/plain" }));
    if (requirements.value.trim()) body.set("requirements", new File([requirements.value], "requirements.txt", { type: "text/plain" }));
    for (const input of inputsBox.querySelectorAll<HTMLInputElement>("input[type=file]")) {
      const file = input.files?.[0];
      if (file) body.set(input.name, file);
    }
    try {
      const res = await call("workflows", { method: "POST", body });
      const w = (await res.json()) as WorkflowDetail;
      location.hash = `#/workflows/${w.id}`;
    } catch (err) {
      failure.hidden = false;
      if (err instanceof ApiError && err.code === "invalid_workflow" && Array.isArray(err.details)) {
        showErrors(editor.textarea.value, err.details as DslErrorInfo[]);
      }
      const details = err instanceof ApiError && Array.isArray(err.details) && err.code !== "invalid_workflow"
        ? `: ${(err.details as { path?: string; message?: string }[]).map((d) => `${d.path ?? ""} ${d.message ?? ""}`.trim()).join("; ")}`
        : "";
      failure.textContent = `${(err as Error).message}${details}`;
      submit.disabled = false;
    }
  }

  document.title = "Submit · DWOP";
  void validate();
  root.querySelector<HTMLElement>("h1")?.focus({ preventScroll: true });
  return {
    stop() {
      if (timer) clearTimeout(timer);
      seq++;
    },
  };
}
