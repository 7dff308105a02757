// Node-only: assembles the Kubernetes executor, its observer and the observer's lease from settings.
import { KubeConfig } from "@kubernetes/client-node";
import type { Config } from "../shared/config.ts";
import type { Store } from "../shared/db/store.ts";
import { KubeApi } from "../shared/executors/kubernetes/api.ts";
import { KubernetesExecutor } from "../shared/executors/kubernetes/executor.ts";
import type { ImagePullPolicy } from "../shared/executors/kubernetes/job-spec.ts";
import type { Logger } from "../shared/log.ts";
import type { Storage } from "../shared/storage/storage.ts";
import { ClusterStore } from "./cluster-store.ts";
import { LeaderLease } from "./lease.ts";
import { JobObserver } from "./observer.ts";

/** The one lease every replica competes for. */
export const OBSERVER_LEASE = "kubernetes-observer";

export interface KubernetesSettings {
  namespace: string;
  image: string;
  imagePullPolicy: ImagePullPolicy;
  jobTtlSeconds: number;
  runAsUser: number;
  defaultCpu: string;
  defaultMemory: string;
  volumeSizeLimit: string;
  qps: number;
  burst: number;
  reconcileSeconds: number;
  lostGraceSeconds: number;
  imagePullTimeoutSeconds: number;
  pendingTimeoutSeconds: number;
  leaseSeconds: number;
  watchBackoffMs?: { initial: number; max: number };
  /** The observer's clock (milliseconds since the epoch); tests move it. */
  now?: () => number;
}

export function kubernetesSettings(config: Config): KubernetesSettings {
  return {
    namespace: config.DWOP_NAMESPACE,
    image: config.DWOP_IMAGE,
    imagePullPolicy: config.DWOP_IMAGE_PULL_POLICY,
    jobTtlSeconds: config.DWOP_KUBE_JOB_TTL_SECONDS,
    runAsUser: config.DWOP_KUBE_RUN_AS_USER,
    defaultCpu: config.DWOP_KUBE_DEFAULT_CPU,
    defaultMemory: config.DWOP_KUBE_DEFAULT_MEMORY,
    volumeSizeLimit: config.DWOP_KUBE_VOLUME_SIZE_LIMIT,
    qps: config.DWOP_KUBE_API_QPS,
    burst: config.DWOP_KUBE_API_BURST,
    reconcileSeconds: config.DWOP_KUBE_RECONCILE_SECONDS,
    lostGraceSeconds: config.DWOP_KUBE_LOST_GRACE_SECONDS,
    imagePullTimeoutSeconds: config.DWOP_KUBE_IMAGE_PULL_TIMEOUT_SECONDS,
    pendingTimeoutSeconds: config.DWOP_KUBE_PENDING_TIMEOUT_SECONDS,
    leaseSeconds: config.DWOP_KUBE_LEASE_SECONDS,
  };
}

/** KUBECONFIG when set; otherwise the in-cluster service account (or ~/.kube/config). */
export function loadKubeConfig(config: Config): KubeConfig {
  const kc = new KubeConfig();
  if (config.KUBECONFIG) kc.loadFromFile(config.KUBECONFIG);
  else kc.loadFromDefault();
  return kc;
}

export interface KubernetesParts {
  api: KubeApi;
  executor: KubernetesExecutor;
  observer: JobObserver;
  /** Runs the observer on whichever replica holds the lease. */
  lease: LeaderLease;
}

export function kubernetesParts(
  store: Store,
  storage: Storage,
  kc: KubeConfig,
  s: KubernetesSettings,
  holder: string,
  logger: Logger,
  onRequest?: (call: string) => void,
): KubernetesParts {
  const api = new KubeApi(kc, { namespace: s.namespace, qps: s.qps, burst: s.burst, logger, onRequest });
  const executor = new KubernetesExecutor(api, {
    image: s.image,
    imagePullPolicy: s.imagePullPolicy,
    ttlSecondsAfterFinished: s.jobTtlSeconds,
    runAsUser: s.runAsUser,
    defaultCpu: s.defaultCpu,
    defaultMemory: s.defaultMemory,
    volumeSizeLimit: s.volumeSizeLimit,
  });
  const observer = new JobObserver(store, api, storage, {
    limits: { imagePullSeconds: s.imagePullTimeoutSeconds, pendingSeconds: s.pendingTimeoutSeconds },
    reconcileSeconds: s.reconcileSeconds,
    lostGraceSeconds: s.lostGraceSeconds,
    watchBackoffMs: s.watchBackoffMs,
    logger,
    now: s.now,
  });
  const lease = new LeaderLease(new ClusterStore(store.db), {
    name: OBSERVER_LEASE,
    holder,
    ttlSeconds: s.leaseSeconds,
    onAcquired: () => observer.start(),
    onLost: () => observer.stop(),
    logger,
  });
  return { api, executor, observer, lease };
}
