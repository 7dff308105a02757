/** Client configuration for the simulator: an in-process KubeConfig, or a kubeconfig file for another process. */
import { KubeConfig } from "@kubernetes/client-node";
import { writeFile } from "node:fs/promises";

const NAME = "kube-sim";

/** A KubeConfig whose current context points at `server` with `token`, in `namespace`. */
export function kubeConfigFor(server: string, token: string, namespace: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    // The client refuses an http:// server unless TLS verification is off.
    clusters: [{ name: NAME, server, skipTLSVerify: true }],
    users: [{ name: NAME, token }],
    contexts: [{ name: NAME, cluster: NAME, user: NAME, namespace }],
    currentContext: NAME,
  });
  return kc;
}

/** The same as a kubeconfig document (JSON is YAML), for KUBECONFIG. */
export function kubeconfigDocument(server: string, token: string, namespace: string): string {
  const doc = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: NAME, cluster: { server, "insecure-skip-tls-verify": true } }],
    users: [{ name: NAME, user: { token } }],
    contexts: [{ name: NAME, context: { cluster: NAME, user: NAME, namespace } }],
    "current-context": NAME,
  };
  return JSON.stringify(doc, null, 2) + "\n";
}

export async function writeKubeconfigFile(
  path: string,
  server: string,
  token: string,
  namespace: string,
): Promise<void> {
  await writeFile(path, kubeconfigDocument(server, token, namespace), { mode: 0o600 });
}
