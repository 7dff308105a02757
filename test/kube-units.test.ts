// The Kubernetes executor's pure parts: Job names, the Job spec (against the batch/v1 schema), how a
// Job's end is judged from its pods, and the request rate limiter.
import { reasonForWorkerFailure } from "../shared/executors/worker-failure.ts";
import type { V1Job, V1Pod } from "@kubernetes/client-node";
import fc from "fast-check";
import { Job } from "kubernetes-models/batch/v1/Job";
import { describe, expect, it } from "vitest";
import type { WorkerEnv } from "../shared/executors/executor.ts";
import { buildJob } from "../shared/executors/kubernetes/job-spec.ts";
import { jobName, runLabels, taskLabel } from "../shared/executors/kubernetes/names.ts";
import { judgeJob } from "../shared/executors/kubernetes/outcome.ts";
import { RateLimiter } from "../shared/executors/kubernetes/rate-limiter.ts";
import { DEFAULT_TASK_OPTIONS, type RunAssignment } from "../shared/model.ts";
import { restrictedViolations } from "./support/pod-security.ts";

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const WF = "0f8e2c4a-1b2c-4d5e-8f90-123456789abc";
const taskName = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/);

const run = (over: Partial<RunAssignment> = {}): RunAssignment => ({
  runId: "42",
  workflowId: WF,
  taskId: "7",
  taskName: "transform",
  attempt: 2,
  params: [],
  options: { ...DEFAULT_TASK_OPTIONS },
  code: { offset: 0, length: 0 },
  hasRequirements: false,
  ...over,
});

const ENV: WorkerEnv = {
  DWOP_CODE_URL: "https://storage.example/code?sig=1",
  DWOP_INPUTS: "[]",
  DWOP_ATTEMPT: "1",
  DWOP_OUTPUT_URL: "https://storage.example/out?sig=2",
  DWOP_LOG_URL: "https://storage.example/log?sig=3",
};
const SPEC = {
  image: "dwop-pyworker:dev",
  imagePullPolicy: "Never" as const,
  ttlSecondsAfterFinished: 3600,
  runAsUser: 10001,
  defaultCpu: "500m",
  defaultMemory: "512Mi",
  volumeSizeLimit: "1Gi",
};

describe("Job names", () => {
  it("are readable when nothing is lost", () => {
    expect(jobName(WF, "transform", 2)).toBe("dwop-0f8e2c4a-transform-a2");
    expect(jobName(WF, "load_all", 1)).toBe("dwop-0f8e2c4a-load-all-a1");
  });

  it("are DNS-1123 labels of at most 63 characters, the same every time, distinct per task and attempt", () => {
    fc.assert(
      fc.property(taskName, taskName, fc.integer({ min: 1, max: 9999 }), (a, b, attempt) => {
        const name = jobName(WF, a, attempt);
        expect(name.length).toBeLessThanOrEqual(63);
        expect(name).toMatch(DNS_LABEL);
        expect(jobName(WF, a, attempt)).toBe(name);
        expect(jobName(WF, a, attempt + 1)).not.toBe(name);
        if (a !== b) expect(jobName(WF, b, attempt)).not.toBe(name);
      }),
      { numRuns: 500 },
    );
  });

  it("add a hash where case was folded or the name truncated", () => {
    expect(jobName(WF, "Extract", 1)).not.toBe(jobName(WF, "extract", 1));
    expect(jobName(WF, "Extract", 1)).toMatch(/^dwop-0f8e2c4a-extract-a1-[0-9a-f]{8}$/);
    const long = `t${"x".repeat(62)}`;
    expect(jobName(WF, long, 12)).toMatch(/^dwop-0f8e2c4a-tx+-a12-[0-9a-f]{8}$/);
  });

  it("label tasks with valid label values", () => {
    fc.assert(
      fc.property(taskName, (t) => {
        expect(taskLabel(t)).toMatch(LABEL_VALUE);
        expect(taskLabel(t).length).toBeLessThanOrEqual(63);
      }),
    );
    expect(taskLabel("_private_")).not.toBe(taskLabel("private"));
  });
});

describe("the Job spec", () => {
  it("is a valid batch/v1 Job", () => {
    const job = buildJob(
      run({ options: { ...DEFAULT_TASK_OPTIONS, timeoutSeconds: 90, cpu: "500m", memory: "256Mi" } }),
      ENV,
      SPEC,
    );
    expect(() => new Job(job as never).validate()).not.toThrow();
  });

  it("runs one locked-down pod with only the signed URLs in its environment", () => {
    const job = buildJob(
      run({ options: { ...DEFAULT_TASK_OPTIONS, timeoutSeconds: 90, cpu: "500m", memory: "256Mi" } }),
      ENV,
      SPEC,
    );
    expect(job.metadata?.labels).toEqual({
      ...runLabels(run()),
      app: "dwop",
      "app.kubernetes.io/managed-by": "dwop",
    });
    expect(job.metadata?.labels).toMatchObject({
      "dwop.io/workflow": WF,
      "dwop.io/task": "transform",
      "dwop.io/attempt": "2",
      "dwop.io/run-id": "42",
    });
    expect(job.spec).toMatchObject({
      backoffLimit: 0,
      activeDeadlineSeconds: 90,
      ttlSecondsAfterFinished: 3600,
    });
    const pod = job.spec!.template.spec!;
    expect(pod).toMatchObject({
      restartPolicy: "Never",
      automountServiceAccountToken: false,
      securityContext: { runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: "RuntimeDefault" } },
    });
    expect(pod.volumes).toEqual([
      { name: "work", emptyDir: { sizeLimit: "1Gi" } },
      { name: "tmp", emptyDir: { sizeLimit: "1Gi" } },
    ]);
    const [c] = pod.containers;
    expect(c).toMatchObject({ image: "dwop-pyworker:dev", imagePullPolicy: "Never" });
    expect(c!.command).toBeUndefined(); // the image's ENTRYPOINT runs the worker
    expect(c!.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
      runAsNonRoot: true,
    });
    expect(c!.resources).toEqual({
      requests: { cpu: "500m", memory: "256Mi" },
      limits: { cpu: "500m", memory: "256Mi" },
    });
    expect(Object.fromEntries(c!.env!.map((e) => [e.name, e.value]))).toEqual(ENV);
  });

  it("takes the task's own image, and the default requests and limits for what the task did not set", () => {
    const job = buildJob(run({ options: { ...DEFAULT_TASK_OPTIONS, image: "my/image:1" } }), ENV, SPEC);
    expect(job.spec!.template.spec!.containers[0]).toMatchObject({
      image: "my/image:1",
      resources: { requests: { cpu: "500m", memory: "512Mi" }, limits: { cpu: "500m", memory: "512Mi" } },
    });
    const onlyCpu = buildJob(run({ options: { ...DEFAULT_TASK_OPTIONS, cpu: "2" } }), ENV, SPEC);
    expect(onlyCpu.spec!.template.spec!.containers[0]!.resources).toEqual({
      requests: { cpu: "2", memory: "512Mi" },
      limits: { cpu: "2", memory: "512Mi" },
    });
    const onlyMemory = buildJob(run({ options: { ...DEFAULT_TASK_OPTIONS, memory: "4Gi" } }), ENV, {
      ...SPEC,
      defaultCpu: "250m",
      volumeSizeLimit: "5Gi",
    });
    const pod = onlyMemory.spec!.template.spec!;
    expect(pod.containers[0]!.resources!.limits).toEqual({ cpu: "250m", memory: "4Gi" });
    expect(pod.volumes!.map((v) => v.emptyDir?.sizeLimit)).toEqual(["5Gi", "5Gi"]);
  });

  it("would be admitted in a namespace that enforces Pod Security `restricted`", () => {
    const pod = buildJob(run(), ENV, SPEC).spec!.template.spec!;
    expect(restrictedViolations(pod)).toEqual([]);
    // The check can fail: each of these is refused by `restricted`.
    const broken = (change: (p: typeof pod) => void) => {
      const copy = structuredClone(pod);
      change(copy);
      return restrictedViolations(copy);
    };
    expect(broken((p) => delete p.containers[0]!.securityContext!.allowPrivilegeEscalation)).toEqual([
      "worker: allowPrivilegeEscalation is not false",
    ]);
    expect(broken((p) => (p.containers[0]!.securityContext!.capabilities = { add: ["NET_ADMIN"] }))).toEqual([
      "worker: capabilities do not drop ALL",
      "worker: adds capability NET_ADMIN",
    ]);
    expect(
      broken((p) => {
        delete p.securityContext!.runAsNonRoot;
        delete p.containers[0]!.securityContext!.runAsNonRoot;
      }),
    ).toEqual(["worker: runAsNonRoot is not true"]);
    expect(broken((p) => delete p.securityContext!.seccompProfile)).toEqual(["worker: seccomp unset"]);
    expect(broken((p) => p.volumes!.push({ name: "host", hostPath: { path: "/" } }))).toEqual([
      "volume host of type hostPath",
    ]);
  });
});

describe("judging a Job", () => {
  const limits = { imagePullSeconds: 60, pendingSeconds: 300 };
  const created = "2030-01-01T00:00:00Z";
  const t = (seconds: number) => Date.parse(created) + seconds * 1000;
  const job = (conditions: { type: string; status: string; reason?: string }[] = []): V1Job =>
    ({
      metadata: { name: "j", creationTimestamp: new Date(created) },
      spec: { activeDeadlineSeconds: 5, template: {} },
      status: { conditions },
    }) as V1Job;
  const pod = (status: Record<string, unknown>): V1Pod =>
    ({ metadata: { name: "j-abcde", creationTimestamp: new Date(created) }, status }) as V1Pod;
  const terminated = (state: Record<string, unknown>) =>
    pod({ phase: "Failed", containerStatuses: [{ name: "worker", state: { terminated: state } }] });
  const failed = (reason = "BackoffLimitExceeded") =>
    job([
      { type: "FailureTarget", status: "True" },
      { type: "Failed", status: "True", reason },
    ]);

  it("decides the end from Complete or Failed with status True only", () => {
    expect(judgeJob(job([{ type: "SuccessCriteriaMet", status: "True" }]), [], t(1), limits).kind).toBe(
      "waiting",
    );
    expect(judgeJob(job([{ type: "Complete", status: "True" }]), [], t(1), limits).kind).toBe("succeeded");
    expect(judgeJob(job([{ type: "Failed", status: "False" }]), [], t(1), limits).kind).toBe("waiting");
  });

  it("names the reason: deadline, eviction, OOMKilled, the worker's failure JSON, a bare exit code", () => {
    const reason = (j: V1Job, p: V1Pod[]) => {
      const v = judgeJob(j, p, t(10), limits);
      return v.kind === "failed"
        ? [v.failure.reason, v.failure.exitCode, v.failure.nonRetryable, v.failure.message]
        : v.kind;
    };
    expect(reason(failed("DeadlineExceeded"), [])).toEqual([
      "timeout",
      null,
      false,
      "timed out after 5s (DeadlineExceeded)",
    ]);
    expect(reason(failed(), [pod({ phase: "Failed", reason: "Evicted", message: "low on memory" })])[0]).toBe(
      "evicted",
    );
    expect(reason(failed(), [terminated({ exitCode: 137, reason: "OOMKilled" })]).slice(0, 2)).toEqual([
      "oom_killed",
      137,
    ]);
    const json = JSON.stringify({ type: "task_failed", message: "exit 3", exitCode: 3, nonRetryable: false });
    expect(reason(failed(), [terminated({ exitCode: 3, reason: "Error", message: json })])).toEqual([
      "exit_code",
      3,
      false,
      "exit 3",
    ]);
    const bad = JSON.stringify({
      type: "requirements_failed",
      message: "pip",
      exitCode: null,
      nonRetryable: true,
    });
    expect(reason(failed(), [terminated({ exitCode: 70, reason: "Error", message: bad })])).toEqual([
      "worker_error",
      70,
      true,
      "pip",
    ]);
    expect(
      reason(failed(), [terminated({ exitCode: 1, reason: "Error", message: "Traceback..." })]).slice(0, 2),
    ).toEqual(["worker_error", 1]);
    expect(reason(failed(), [])[0]).toBe("lost");
    // Found by the chaos soak: a worker SIGKILLed from outside spent the task's own retries.
    expect(reason(failed(), [terminated({ exitCode: 137, reason: "Error" })]).slice(0, 2)).toEqual([
      "lost",
      137,
    ]);
    expect(reason(failed(), [terminated({ exitCode: 143, reason: "Error" })]).slice(0, 2)).toEqual([
      "lost",
      143,
    ]);
    // Found by the chaos soak: the runtime failed to start the worker's container, and the task failed.
    const unstarted = terminated({ exitCode: 128, reason: "StartError", message: "podman exited 126" });
    expect(reason(failed(), [unstarted])).toEqual([
      "lost",
      128,
      false,
      "the container runtime could not start the worker (StartError): podman exited 126",
    ]);
  });

  it("fails a Job waiting for its image or a node only once it has waited longer than allowed", () => {
    const pulling = pod({
      phase: "Pending",
      containerStatuses: [
        { name: "worker", state: { waiting: { reason: "ImagePullBackOff", message: "not found" } } },
      ],
    });
    expect(judgeJob(job(), [pulling], t(59), limits).kind).toBe("waiting");
    expect(judgeJob(job(), [pulling], t(61), limits)).toMatchObject({
      kind: "failed",
      stuck: true,
      failure: { reason: "image_pull" },
    });
    const unschedulable = pod({
      phase: "Pending",
      conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/3 nodes" }],
    });
    expect(judgeJob(job(), [unschedulable], t(299), limits).kind).toBe("waiting");
    const late = judgeJob(job(), [unschedulable], t(301), limits);
    expect(late).toMatchObject({ kind: "failed", failure: { reason: "unschedulable" } });
    expect(late.kind === "failed" && late.failure.message).toContain("0/3 nodes");
    expect(judgeJob(job(), [], t(301), limits)).toMatchObject({
      kind: "failed",
      failure: { reason: "unschedulable" },
    });
    expect(judgeJob(job(), [pod({ phase: "Running" })], t(1000), limits).kind).toBe("running");
  });
});

describe("the rate limiter", () => {
  it("lets a burst through, then paces to the rate", () => {
    let now = 0;
    const limiter = new RateLimiter(10, 3, () => now);
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      delays.push(limiter.delayMs);
      void limiter.take();
    }
    expect(delays.map(Math.round)).toEqual([0, 0, 0, 100, 200]);
    now = 1000; // a second later the bucket has refilled to its burst
    expect(limiter.delayMs).toBe(0);
  });
});

describe("worker failure reasons", () => {
  it("charges a failed transfer to the infrastructure, the body's own failure to the task", () => {
    expect(reasonForWorkerFailure("task_failed")).toBe("exit_code");
    expect(reasonForWorkerFailure("download_failed")).toBe("lost");
    expect(reasonForWorkerFailure("upload_failed")).toBe("lost");
    expect(reasonForWorkerFailure("requirements_failed")).toBe("worker_error");
  });
});
