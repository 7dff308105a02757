/** What the API server does to a Job on create (validation, defaults) and the pod the controller makes from it. */
import { randomInt } from "node:crypto";
import type { StatusCause } from "./status.ts";
import type { Container, Job, Pod } from "./types.ts";

const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

const SUBDOMAIN_HELP =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_HELP =
  "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

// The Kubernetes name generator's alphabet: no vowels, no look-alike digits.
const ALPHABET = "bcdfghjklmnpqrstvwxz2456789";

export function randomSuffix(length = 5): string {
  let s = "";
  for (let i = 0; i < length; i++) s += ALPHABET[randomInt(ALPHABET.length)];
  return s;
}

const invalidValue = (field: string, value: unknown, why: string): StatusCause => ({
  reason: "FieldValueInvalid",
  message: `Invalid value: ${JSON.stringify(value)}: ${why}`,
  field,
});

const required = (field: string, why = ""): StatusCause => ({
  reason: "FieldValueRequired",
  message: why ? `Required value: ${why}` : "Required value",
  field,
});

/** The field errors the API server would report for this Job (a subset: the ones a Job author hits). */
export function validateJob(job: Job): StatusCause[] {
  const causes: StatusCause[] = [];
  const name = job.metadata.name ?? "";
  if (!name) causes.push(required("metadata.name", "name or generateName is required"));
  else if (!SUBDOMAIN.test(name)) causes.push(invalidValue("metadata.name", name, SUBDOMAIN_HELP));
  // The controller copies the name into the pods' job-name label, whose values stop at 63.
  else if (name.length > 63)
    causes.push(invalidValue("metadata.name", name, "must be no more than 63 characters"));
  for (const [k, v] of Object.entries(job.metadata.labels ?? {})) {
    if (v.length > 63 || !LABEL_VALUE.test(v))
      causes.push(
        invalidValue(
          `metadata.labels`,
          v,
          "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
        ),
      );
    if (!k) causes.push(invalidValue("metadata.labels", k, "name part must be non-empty"));
  }
  const spec = job.spec?.template?.spec;
  if (!spec) return [...causes, required("spec.template.spec")];
  const policy = spec.restartPolicy;
  if (policy !== "Never" && policy !== "OnFailure") {
    causes.push(
      policy
        ? {
            reason: "FieldValueNotSupported",
            message: `Unsupported value: "${policy}": supported values: "OnFailure", "Never"`,
            field: "spec.template.spec.restartPolicy",
          }
        : required("spec.template.spec.restartPolicy", 'valid values: "OnFailure", "Never"'),
    );
  }
  const containers = spec.containers ?? [];
  if (containers.length === 0) causes.push(required("spec.template.spec.containers"));
  containers.forEach((c, i) => {
    const at = `spec.template.spec.containers[${i}]`;
    if (!c.name) causes.push(required(`${at}.name`));
    else if (!LABEL.test(c.name)) causes.push(invalidValue(`${at}.name`, c.name, LABEL_HELP));
    if (!c.image) causes.push(required(`${at}.image`));
  });
  if (job.spec.backoffLimit !== undefined && job.spec.backoffLimit < 0) {
    causes.push(
      invalidValue("spec.backoffLimit", job.spec.backoffLimit, "must be greater than or equal to 0"),
    );
  }
  return causes;
}

function defaultContainer(c: Container): Container {
  const tagged = /:[^/]+$/.test(c.image ?? "") || (c.image ?? "").includes("@");
  const latest = !tagged || (c.image ?? "").endsWith(":latest");
  return {
    terminationMessagePath: "/dev/termination-log",
    terminationMessagePolicy: "File",
    imagePullPolicy: latest ? "Always" : "IfNotPresent",
    resources: {},
    ...c,
  };
}

/** The Job as stored: defaults filled in, selector generated, the controller's labels on its template. */
export function defaultJob(input: Job, uid: string): Job {
  const job = structuredClone(input);
  const name = job.metadata.name!;
  const controllerLabels = {
    "batch.kubernetes.io/controller-uid": uid,
    "batch.kubernetes.io/job-name": name,
    "controller-uid": uid,
    "job-name": name,
  };
  const template = job.spec.template;
  template.metadata = { ...template.metadata, labels: { ...template.metadata?.labels, ...controllerLabels } };
  template.spec = {
    terminationGracePeriodSeconds: 30,
    dnsPolicy: "ClusterFirst",
    securityContext: {},
    schedulerName: "default-scheduler",
    ...template.spec,
    containers: template.spec.containers.map(defaultContainer),
  };
  job.apiVersion = "batch/v1";
  job.kind = "Job";
  job.metadata = { ...job.metadata, uid, generation: 1 };
  if (!job.metadata.labels || Object.keys(job.metadata.labels).length === 0)
    job.metadata.labels = { ...template.metadata.labels };
  job.spec = {
    parallelism: 1,
    completions: 1,
    backoffLimit: 6,
    completionMode: "NonIndexed",
    suspend: false,
    podReplacementPolicy: "TerminatingOrFailed",
    manualSelector: undefined,
    ...job.spec,
    selector: { matchLabels: { "batch.kubernetes.io/controller-uid": uid } },
    template,
  };
  delete job.spec.manualSelector;
  job.status = {};
  return job;
}

/** A new pod for the Job, as the job controller creates it (generateName `<job>-`). */
export function podFor(job: Job): Pod {
  const name = job.metadata.name!;
  const template = job.spec.template;
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: `${name}-${randomSuffix()}`,
      generateName: `${name}-`,
      namespace: job.metadata.namespace,
      labels: { ...template.metadata?.labels },
      annotations: { ...template.metadata?.annotations },
      ownerReferences: [
        {
          apiVersion: "batch/v1",
          kind: "Job",
          name,
          uid: job.metadata.uid!,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      serviceAccountName: "default",
      enableServiceLinks: true,
      priority: 0,
      ...structuredClone(template.spec),
    },
    status: { phase: "Pending", qosClass: "BestEffort" },
  };
}
