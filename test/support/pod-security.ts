// Kubernetes Pod Security Standards, `restricted` profile (which includes `baseline`), as the admission
// controller checks a pod spec: https://kubernetes.io/docs/concepts/security/pod-security-standards/
import type { V1Container, V1PodSpec } from "@kubernetes/client-node";

const RESTRICTED_VOLUME_TYPES = new Set([
  "configMap",
  "csi",
  "downwardAPI",
  "emptyDir",
  "ephemeral",
  "persistentVolumeClaim",
  "projected",
  "secret",
]);
const SAFE_SYSCTLS = new Set([
  "kernel.shm_rmid_forced",
  "net.ipv4.ip_local_port_range",
  "net.ipv4.ip_unprivileged_port_start",
  "net.ipv4.tcp_syncookies",
  "net.ipv4.ping_group_range",
  "net.ipv4.ip_local_reserved_ports",
  "net.ipv4.tcp_keepalive_time",
  "net.ipv4.tcp_fin_timeout",
  "net.ipv4.tcp_keepalive_intvl",
  "net.ipv4.tcp_keepalive_probes",
]);

/** What a pod spec does that Pod Security `restricted` refuses; empty when the pod would be admitted. */
export function restrictedViolations(pod: V1PodSpec): string[] {
  const problems: string[] = [];
  if (pod.hostNetwork || pod.hostPID || pod.hostIPC) problems.push("host namespaces");
  for (const sysctl of pod.securityContext?.sysctls ?? []) {
    if (!SAFE_SYSCTLS.has(sysctl.name)) problems.push(`unsafe sysctl ${sysctl.name}`);
  }
  for (const volume of pod.volumes ?? []) {
    const types = Object.keys(volume).filter((k) => k !== "name");
    for (const type of types) {
      if (!RESTRICTED_VOLUME_TYPES.has(type)) problems.push(`volume ${volume.name} of type ${type}`);
    }
  }
  const podContext = pod.securityContext ?? {};
  if (podContext.runAsUser === 0) problems.push("pod runAsUser 0");
  if (podContext.seccompProfile?.type === "Unconfined") problems.push("pod seccomp Unconfined");
  if (podContext.seLinuxOptions?.user || podContext.seLinuxOptions?.role)
    problems.push("pod SELinux user/role");
  const containers: V1Container[] = [
    ...(pod.initContainers ?? []),
    ...pod.containers,
    ...((pod.ephemeralContainers ?? []) as V1Container[]),
  ];
  for (const c of containers) problems.push(...containerViolations(c, pod).map((p) => `${c.name}: ${p}`));
  return problems;
}

function containerViolations(c: V1Container, pod: V1PodSpec): string[] {
  const problems: string[] = [];
  const sc = c.securityContext ?? {};
  const podContext = pod.securityContext ?? {};
  if (sc.privileged) problems.push("privileged");
  if (sc.allowPrivilegeEscalation !== false) problems.push("allowPrivilegeEscalation is not false");
  const nonRoot = sc.runAsNonRoot ?? podContext.runAsNonRoot;
  if (nonRoot !== true) problems.push("runAsNonRoot is not true");
  if (sc.runAsUser === 0) problems.push("runAsUser 0");
  const seccomp = sc.seccompProfile?.type ?? podContext.seccompProfile?.type;
  if (seccomp !== "RuntimeDefault" && seccomp !== "Localhost") problems.push(`seccomp ${seccomp ?? "unset"}`);
  if (!(sc.capabilities?.drop ?? []).includes("ALL")) problems.push("capabilities do not drop ALL");
  for (const cap of sc.capabilities?.add ?? []) {
    if (cap !== "NET_BIND_SERVICE") problems.push(`adds capability ${cap}`);
  }
  if (sc.procMount && sc.procMount !== "Default") problems.push(`procMount ${sc.procMount}`);
  if (sc.seLinuxOptions?.user || sc.seLinuxOptions?.role) problems.push("SELinux user/role");
  if (sc.appArmorProfile?.type === "Unconfined") problems.push("AppArmor Unconfined");
  if ((c.ports ?? []).some((p) => p.hostPort)) problems.push("hostPort");
  return problems;
}
