// deploy/: every manifest checked against the Kubernetes schemas of the kubernetes-models package, and
// against what the code expects of it (config names, labels, ports, RBAC verbs).
import { loadAllYaml, type KubernetesObject } from "@kubernetes/client-node";
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../shared/config.ts";
import { LABELS } from "../shared/executors/kubernetes/names.ts";
import { restrictedViolations } from "./support/pod-security.ts";

const DEPLOY = new URL("../deploy/", import.meta.url);

interface Manifest extends KubernetesObject {
  [field: string]: unknown;
}

async function manifests(): Promise<Manifest[]> {
  const kustomization = (
    loadAllYaml(await readFile(new URL("kustomization.yaml", DEPLOY), "utf8")) as { resources: string[] }[]
  )[0]!;
  const docs: Manifest[] = [];
  for (const file of kustomization.resources) {
    docs.push(...(loadAllYaml(await readFile(new URL(file, DEPLOY), "utf8")) as Manifest[]));
  }
  return docs;
}

/** The kubernetes-models class for an object's apiVersion and kind (e.g. kubernetes-models/apps/v1/Deployment). */
async function validate(obj: Manifest): Promise<void> {
  const module = (await import(`kubernetes-models/${obj.apiVersion}/${obj.kind}`)) as Record<
    string,
    new (data: unknown) => { validate(): void }
  >;
  const Model = module[obj.kind!];
  if (!Model) throw new Error(`no schema for ${obj.apiVersion} ${obj.kind}`);
  new Model(obj).validate();
}

/** A Kubernetes quantity as a number ("500m" is 0.5, "512Mi" is 536870912). */
function amount(quantity: string): number {
  const m = /^(\d+(?:\.\d+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(quantity);
  if (!m) throw new Error(`not a quantity: ${quantity}`);
  const unit = {
    m: 1e-3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
  };
  return Number(m[1]) * (m[2] ? unit[m[2] as keyof typeof unit] : 1);
}

const find = <T = Manifest>(docs: Manifest[], kind: string) => docs.find((d) => d.kind === kind) as T;

/** Loose access to a manifest's nested fields, for assertions. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = Record<string, any>;

describe("deploy/ manifests", () => {
  it("are valid Kubernetes objects, all in the dwop namespace", async () => {
    const docs = await manifests();
    expect(docs.map((d) => d.kind).sort()).toEqual(
      [
        "ConfigMap",
        "Deployment",
        "LimitRange",
        "Namespace",
        "NetworkPolicy",
        "Role",
        "RoleBinding",
        "ResourceQuota",
        "Secret",
        "ServiceAccount",
      ].sort(),
    );
    for (const doc of docs) await validate(doc);
    for (const doc of docs.filter((d) => d.kind !== "Namespace"))
      expect(doc.metadata?.namespace).toBe("dwop");
  });

  it("the schemas catch a broken manifest (so the check above can fail)", async () => {
    const deployment = structuredClone(find(await manifests(), "Deployment"));
    (deployment as { spec: { replicas: unknown } }).spec.replicas = "two";
    await expect(validate(deployment)).rejects.toThrow(/replicas/);
  });

  it("grants the dispatcher only jobs, pods and pods/log in its namespace", async () => {
    const docs = await manifests();
    const role = find<{ rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[] }>(
      docs,
      "Role",
    );
    const grants = role.rules.flatMap((r) =>
      r.resources.map((res) => `${r.apiGroups.join()}/${res}: ${[...r.verbs].sort().join(",")}`),
    );
    expect(grants.sort()).toEqual([
      "/pods/log: get",
      "/pods: get,list,watch",
      "batch/jobs: create,delete,get,list,watch",
    ]);
    const binding = find<{ roleRef: { name: string }; subjects: { name: string }[] }>(docs, "RoleBinding");
    expect(binding.roleRef.name).toBe("dwop-dispatcher");
    expect(binding.subjects.map((s) => s.name)).toEqual([find(docs, "ServiceAccount").metadata?.name]);
    expect(docs.some((d) => d.kind === "ClusterRole" || d.kind === "ClusterRoleBinding")).toBe(false);
  });

  it("runs two dispatcher replicas with probes, resources and a grace period longer than the drain", async () => {
    const docs = await manifests();
    const config = find<{ data: Record<string, string> }>(docs, "ConfigMap").data;
    const secret = find<{ stringData: Record<string, string> }>(docs, "Secret").stringData;
    const d = find<{ spec: { replicas: number; template: { spec: Loose } } }>(docs, "Deployment");
    const pod = d.spec.template.spec;
    const [c] = pod.containers;
    expect(d.spec.replicas).toBe(2);
    expect(pod.serviceAccountName).toBe("dwop-dispatcher");
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(Number(config.DWOP_SHUTDOWN_GRACE_SECONDS));
    expect(c.livenessProbe.httpGet).toMatchObject({ path: "/healthz", port: "metrics" });
    expect(c.readinessProbe.httpGet).toMatchObject({ path: "/readyz", port: "metrics" });
    expect(c.ports[0].containerPort).toBe(Number(config.DWOP_METRICS_PORT));
    expect(c.resources.requests && c.resources.limits).toBeTruthy();
    expect(c.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    // The ConfigMap and Secret together are a configuration the dispatcher accepts.
    const parsed = loadConfig({ ...config, ...secret });
    expect(parsed).toMatchObject({
      DWOP_EXECUTOR: "kubernetes",
      DWOP_NAMESPACE: "dwop",
      DWOP_METRICS_PORT: 9090,
    });
  });

  it("limits task pods (selected by the label every Job carries) to DNS and HTTPS outside the cluster's ranges, and nothing in", async () => {
    const policy = find<{ spec: Loose }>(await manifests(), "NetworkPolicy").spec;
    expect(policy.podSelector.matchLabels).toEqual({ [LABELS.managedBy]: "dwop" });
    expect(policy.policyTypes.sort()).toEqual(["Egress", "Ingress"]);
    expect(policy.ingress).toEqual([]);
    const ports = policy.egress.flatMap((rule: { ports: { port: number }[] }) =>
      rule.ports.map((p) => p.port),
    );
    expect([...new Set(ports)].sort()).toEqual([443, 53]);
    // Every rule names where it goes: a rule without `to` would open its port to every address.
    for (const rule of policy.egress) expect(rule.to?.length).toBeGreaterThan(0);
    const [dns, https] = policy.egress as Loose[];
    expect(dns!.ports.map((p: Loose) => p.port)).toEqual([53, 53]);
    expect(dns!.to).toEqual([
      {
        namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } },
        podSelector: { matchLabels: { "k8s-app": "kube-dns" } },
      },
    ]);
    expect(https!.ports).toEqual([{ protocol: "TCP", port: 443 }]);
    const v4 = https!.to.find((t: Loose) => t.ipBlock?.cidr === "0.0.0.0/0");
    expect(v4.ipBlock.except.sort()).toEqual(
      [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
      ].sort(),
    );
    const v6 = https!.to.find((t: Loose) => t.ipBlock?.cidr === "::/0");
    expect(v6.ipBlock.except).toEqual(expect.arrayContaining(["fc00::/7", "fe80::/10"]));
    expect(https!.to.every((t: Loose) => Object.keys(t).join() === "ipBlock")).toBe(true);
  });

  it("enforces Pod Security `restricted` on the namespace, which the dispatcher's pod satisfies", async () => {
    const docs = await manifests();
    const labels = find(docs, "Namespace").metadata!.labels!;
    for (const mode of ["enforce", "audit", "warn"]) {
      expect(labels[`pod-security.kubernetes.io/${mode}`]).toBe("restricted");
    }
    const d = find<{ spec: { template: { spec: Loose } } }>(docs, "Deployment");
    expect(restrictedViolations(d.spec.template.spec as never)).toEqual([]);
  });

  it("gives containers the dispatcher's default requests and limits, and a quota that fits DWOP_KUBE_MAX_JOBS of them", async () => {
    const docs = await manifests();
    const config = loadConfig(find<{ data: Record<string, string> }>(docs, "ConfigMap").data);
    const defaults = loadConfig({});
    expect([config.DWOP_KUBE_DEFAULT_CPU, config.DWOP_KUBE_DEFAULT_MEMORY]).toEqual([
      defaults.DWOP_KUBE_DEFAULT_CPU,
      defaults.DWOP_KUBE_DEFAULT_MEMORY,
    ]);
    const [limits] = find<{ spec: { limits: Loose[] } }>(docs, "LimitRange").spec.limits;
    expect(limits!.type).toBe("Container");
    const pod = { cpu: config.DWOP_KUBE_DEFAULT_CPU, memory: config.DWOP_KUBE_DEFAULT_MEMORY };
    expect(limits!._default).toEqual(pod); // the client's model names `default` so
    expect(limits!.defaultRequest).toEqual(pod);
    expect(amount(limits!.max.cpu)).toBeGreaterThanOrEqual(amount(pod.cpu));
    expect(amount(limits!.max.memory)).toBeGreaterThanOrEqual(amount(pod.memory));

    const hard = find<{ spec: { hard: Record<string, string> } }>(docs, "ResourceQuota").spec.hard;
    const d = find<{ spec: { replicas: number; template: { spec: Loose } } }>(docs, "Deployment");
    const dispatcher = d.spec.template.spec.containers[0].resources;
    const replicas = d.spec.replicas + 1; // one more during a rolling update (maxSurge 1)
    const jobs = config.DWOP_KUBE_MAX_JOBS;
    expect(Number(hard.pods)).toBeGreaterThanOrEqual(jobs + replicas);
    for (const kind of ["requests", "limits"] as const) {
      for (const resource of ["cpu", "memory"] as const) {
        const need = jobs * amount(pod[resource]) + replicas * amount(dispatcher[kind][resource]);
        expect(amount(hard[`${kind}.${resource}`]!), `${kind}.${resource}`).toBeGreaterThanOrEqual(need);
      }
    }
  });

  it("builds the dispatcher image on Node 24 as a non-root user", async () => {
    const dockerfile = await readFile(new URL("dispatcher.Dockerfile", DEPLOY), "utf8");
    // The production base by default; `npm run images` passes an offline one where no registry answers.
    expect(dockerfile).toMatch(/^ARG BASE=node:24[-\w.]*$/m);
    expect(dockerfile).toMatch(/^FROM \$\{BASE\}$/m);
    const user = /^USER (\S+)$/m.exec(dockerfile)?.[1];
    expect(user && !["root", "0"].includes(user)).toBe(true);
    // The prebuilt bundle: a restarted pod compiles no TypeScript.
    expect(dockerfile).toMatch(/^RUN node --import tsx bin\/build-cli.ts dispatcher$/m);
    expect(dockerfile).toMatch(/ENTRYPOINT \["node", "dist\/dispatcher.mjs"\]/);
  });
});
