/**
 * The Kubernetes manifests of deploy/: every overlay rendered (`kubectl kustomize`, or
 * render.ts when kubectl is absent or LN_DEPLOY_RENDERER=builtin), every object validated
 * against the Kubernetes / cert-manager / prometheus-operator schemas of kubernetes-models, and
 * the operating rules of deploy/README.md checked as policy. Custom resources without a model
 * (CloudNativePG) get a structural check only (apiVersion, kind, metadata.name, spec).
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { PersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { Certificate } from "@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate";
import { Issuer } from "@kubernetes-models/cert-manager/cert-manager.io/v1/Issuer";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { loadConfig as loadSignerConfig } from "../../services/signer/src/config.js";
import { loadConfig as loadChannelConfig } from "../../services/channel/src/config.js";
import { loadConfig as loadPeerConfig } from "../../services/peer/src/config.js";
import { loadConfig as loadWatchtowerConfig } from "../../services/watchtower/src/config.js";
import { towerRecordsSubject } from "../../services/channel/src/onchain/tower-link.js";
import { defaultEventsStreamName } from "../../services/channel/src/config.js";
import { eventSubject } from "../../services/channel/src/events/relay.js";
import { renderKustomization, type K8sObject } from "./render.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");
const DEPLOY = join(ROOT, "deploy");
const OVERLAYS = ["dev", "production"] as const;
type Overlay = (typeof OVERLAYS)[number];

// ---- rendering ---------------------------------------------------------------------------------

function findKubectl(): string | undefined {
  if (process.env["LN_DEPLOY_RENDERER"] === "builtin") return undefined;
  for (const candidate of ["/usr/bin/kubectl", "kubectl"]) {
    try {
      execFileSync(candidate, ["version", "--client"], { stdio: "ignore", timeout: 10_000 });
      return candidate;
    } catch {
      // not this one
    }
  }
  return undefined;
}
const KUBECTL = findKubectl();

function kubectlKustomize(dir: string): K8sObject[] {
  const text = execFileSync(KUBECTL as string, ["kustomize", dir], { encoding: "utf8", timeout: 30_000 });
  return parseAllDocuments(text)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

const rendered = new Map<string, K8sObject[]>();
function render(overlay: Overlay): K8sObject[] {
  let objs = rendered.get(overlay);
  if (!objs) {
    const dir = join(DEPLOY, "overlays", overlay);
    objs = KUBECTL ? kubectlKustomize(dir) : renderKustomization(dir);
    rendered.set(overlay, objs);
  }
  return structuredClone(objs);
}

const id = (o: K8sObject): string => `${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;
const byId = (objs: K8sObject[]): Record<string, K8sObject> =>
  Object.fromEntries(objs.map((o) => [id(o), o]));

// ---- typed access to the parts the policies look at ----------------------------------------------

interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: unknown[];
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string };
    fieldRef?: { fieldPath: string };
    configMapKeyRef?: { name: string; key: string };
  };
}
interface Probe {
  httpGet?: { path: string; port: string | number };
  tcpSocket?: { port: string | number };
  exec?: { command: string[] };
  grpc?: unknown;
}
interface Container {
  name: string;
  image: string;
  ports?: { name?: string; containerPort: number }[];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    runAsNonRoot?: boolean;
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
    seccompProfile?: { type: string };
  };
  volumeMounts?: { name: string; mountPath: string }[];
}
interface Volume {
  name: string;
  secret?: {
    secretName: string;
    optional?: boolean;
    defaultMode?: number;
    items?: { key: string; path: string; mode?: number }[];
  };
  emptyDir?: unknown;
  persistentVolumeClaim?: { claimName: string };
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  securityContext?: { runAsNonRoot?: boolean; seccompProfile?: { type: string } };
}
interface DeploymentObj extends K8sObject {
  spec: {
    replicas?: number;
    strategy?: { type: string };
    selector: LabelSelector;
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
  };
}
interface NetworkPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string };
}
interface NetworkPolicyRule {
  from?: NetworkPeer[];
  to?: NetworkPeer[];
  ports?: { protocol?: string; port?: number | string; endPort?: number }[];
}
interface NetworkPolicyObj extends K8sObject {
  spec: {
    podSelector: LabelSelector;
    policyTypes: string[];
    ingress?: NetworkPolicyRule[];
    egress?: NetworkPolicyRule[];
  };
}
interface ServiceObj extends K8sObject {
  spec: {
    type?: string;
    clusterIP?: string;
    selector?: Record<string, string>;
    ports: { name?: string; port: number; targetPort?: string | number; nodePort?: number }[];
  };
}
interface ServiceMonitorObj extends K8sObject {
  spec: {
    selector: LabelSelector;
    namespaceSelector?: unknown;
    endpoints: { port?: string; targetPort?: unknown; path?: string; scheme?: string }[];
  };
}
interface HpaObj extends K8sObject {
  spec: { scaleTargetRef: { kind: string; name: string }; minReplicas?: number; maxReplicas: number };
}

const ofKind = <T extends K8sObject>(objs: K8sObject[], kind: string): T[] =>
  objs.filter((o) => o.kind === kind) as T[];
const deployments = (objs: K8sObject[]): DeploymentObj[] => ofKind<DeploymentObj>(objs, "Deployment");
const deployment = (objs: K8sObject[], name: string): DeploymentObj => {
  const d = deployments(objs).find((o) => o.metadata.name === name);
  if (!d) throw new Error(`no Deployment ${name}`);
  return d;
};
const mainContainer = (objs: K8sObject[], name: string): Container =>
  deployment(objs, name).spec.template.spec.containers[0] as Container;
/** A container port by number or by name (as probes, Services and NetworkPolicies give it). */
const containerPort = (c: Container, p: string | number | undefined): number | undefined =>
  typeof p === "number" ? p : c.ports?.find((x) => x.name === p)?.containerPort;
const allContainers = (d: DeploymentObj): Container[] => [
  ...d.spec.template.spec.containers,
  ...(d.spec.template.spec.initContainers ?? []),
];

/** Whether a selector selects these labels (matchLabels only: the manifests use nothing else). */
function selects(sel: LabelSelector, labels: Record<string, string>): boolean {
  if (sel.matchExpressions?.length) throw new Error("matchExpressions: extend selects()");
  return Object.entries(sel.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
}

const SERVICES = ["ln-signer", "ln-channel", "ln-peer", "ln-watchtower"] as const;
/**
 * The services whose /metrics, /healthz and /readyz are on a separate plain-HTTP ops port (the
 * container port "ops", <PREFIX>_OPS_LISTEN): all of them; the channel service's control API
 * port has no /metrics.
 */
const OPS_SERVICES = {
  "ln-signer": "SIGNER",
  "ln-channel": "CHANNEL",
  "ln-peer": "PEER",
  "ln-watchtower": "WATCHTOWER",
} as const;
/** The port each service serves /metrics on: the setting that holds it. */
const METRICS_LISTEN: Record<(typeof SERVICES)[number], string> = {
  "ln-signer": "SIGNER_OPS_LISTEN",
  "ln-channel": "CHANNEL_OPS_LISTEN",
  "ln-peer": "PEER_OPS_LISTEN",
  "ln-watchtower": "WATCHTOWER_OPS_LISTEN",
};
/**
 * The signer's clients: channel and peer for their own signatures, the watchtower for justice
 * (DESIGN.md 7). Each has its own client certificate, and nothing else reaches the signer.
 */
const SIGNER_CLIENTS = ["ln-channel", "ln-peer", "ln-watchtower"] as const;
/** The role the signer must give each client (services/signer/src/permissions.ts). */
const SIGNER_CLIENT_ROLES: Record<(typeof SIGNER_CLIENTS)[number], string> = {
  "ln-channel": "channel",
  "ln-peer": "gateway",
  "ln-watchtower": "tower",
};
/**
 * The services that use NATS, each as its own NATS user: the .creds file of its own Secret
 * (deploy/README.md, "NATS users"). The signer does not use NATS.
 */
const NATS_CLIENTS = {
  "ln-channel": "ln-nats-channel-creds",
  "ln-peer": "ln-nats-peer-creds",
  "ln-watchtower": "ln-nats-watchtower-creds",
} as const;
const NATS_CREDS_KEY = "nats.creds";
/** Every setting by which a service would take NATS credentials (packages/env EnvReader.nats()). */
const NATS_AUTH_SETTINGS = ["NATS_CREDS_FILE", "NATS_USER", "NATS_PASSWORD", "NATS_TOKEN"];
/** Prometheus, as the NetworkPolicies admit it: any pod of the namespace "monitoring". */
const PROMETHEUS_PEER: NetworkPeer = {
  namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } },
};

// ---- schema validation ----------------------------------------------------------------------

interface Validatable {
  validate(): void;
}
const MODELS: Record<string, new (data: never) => Validatable> = {
  "v1/ConfigMap": ConfigMap,
  "v1/Namespace": Namespace,
  "v1/PersistentVolumeClaim": PersistentVolumeClaim,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "apps/v1/Deployment": Deployment,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "cert-manager.io/v1/Certificate": Certificate,
  "cert-manager.io/v1/Issuer": Issuer,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
};
/** Custom resources without a kubernetes-models package: structural checks only. */
const UNMODELLED = new Set(["postgresql.cnpg.io/v1/Cluster", "postgresql.cnpg.io/v1/ScheduledBackup"]);

// ---- the Secrets the operator creates (deploy/README.md) and stand-in values for them ----------

const OPERATOR_SECRETS: Record<string, Record<string, string>> = {
  "ln-signer-db": { url: "postgres://signer:pw@ln-signer-pg-rw:5432/signer" },
  "ln-channel-db": { url: "postgres://channel:pw@ln-pg-rw:5432/ln" },
  "ln-watchtower-db": { url: "postgres://watchtower:pw@ln-pg-rw:5432/ln" },
  "ln-channel-admin-token": { token: "t".repeat(40) },
  "ln-bitcoin-rpc": { user: "rpc", password: "rpcpassword" },
};
/** Secrets referenced by other objects (CNPG roles and backups, the production CA Issuer) or mounted as files (NATS credentials, the seed key). */
const OTHER_OPERATOR_SECRETS = [
  "ln-signer-seed-key",
  ...Object.values(NATS_CLIENTS),
  "ln-pg-signer",
  "ln-pg-channel",
  "ln-pg-watchtower",
  "ln-pg-backup",
  "ln-signer-ca-keypair",
];

const SECRET_NAME = /KEY|TOKEN|PASSWORD|SECRET|SEED|CREDS/;
/** Secret-looking names that are not secrets, and why. */
const NOT_SECRET: Record<string, string> = {
  SIGNER_SEED_FILE:
    "the path of the encrypted seed file on the PVC; its key SIGNER_SEED_KEY_FILE is a Secret's file",
};

/** The environment a container would see, with stand-ins for Secret values. */
function containerEnv(objs: K8sObject[], c: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    if (from.secretRef)
      throw new Error(`${c.name}: envFrom secretRef hides which keys are secret; use secretKeyRef`);
    const cm = objs.find((o) => o.kind === "ConfigMap" && o.metadata.name === from.configMapRef?.name);
    if (!cm) throw new Error(`${c.name}: ConfigMap ${from.configMapRef?.name} is missing`);
    Object.assign(env, cm["data"]);
  }
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.secretKeyRef) {
      const { name, key } = e.valueFrom.secretKeyRef;
      const v = OPERATOR_SECRETS[name]?.[key];
      if (v === undefined)
        throw new Error(`${c.name}: Secret ${name}/${key} is not one deploy/README.md lists`);
      env[e.name] = v;
    } else if (e.valueFrom?.fieldRef) env[e.name] = "pod-name-0";
    else throw new Error(`${c.name}: env ${e.name} has an unsupported source`);
  }
  return env;
}

// ---- policy checks (each returns its findings; the negative tests below prove they find) -------

/** Secrets with values; secret-looking settings that are neither secretKeyRefs nor Secret files. */
function secretProblems(objs: K8sObject[]): string[] {
  const problems: string[] = [];
  for (const s of objs.filter((x) => x.kind === "Secret"))
    if (s["data"] !== undefined || s["stringData"] !== undefined) problems.push(`${id(s)} holds values`);
  for (const d of deployments(objs)) {
    const pod = d.spec.template.spec;
    for (const c of allContainers(d)) {
      const fromSecret = new Set((c.env ?? []).filter((e) => e.valueFrom?.secretKeyRef).map((e) => e.name));
      const plain = Object.entries(containerEnv(objs, c)).filter(([name]) => !fromSecret.has(name));
      for (const [name, value] of plain) {
        const where = `${d.metadata.name}/${c.name}: ${name}`;
        if (/DATABASE_URL$/.test(name)) problems.push(`${where}: a database URL not from a Secret`);
        if (!SECRET_NAME.test(name) || name in NOT_SECRET) continue;
        // Allowed only as the path of a file in a Secret volume (a cert-manager key, a NATS .creds).
        const mount = c.volumeMounts?.find((m) => value.startsWith(`${m.mountPath}/`));
        if (!pod.volumes?.find((v) => v.name === mount?.name)?.secret)
          problems.push(`${where} is neither a secretKeyRef nor a path in a Secret volume`);
      }
    }
  }
  return problems;
}

/**
 * NATS credentials: with `required` (production), each of NATS_CLIENTS has NATS_CREDS_FILE, the
 * only NATS credential it is given, pointing at the key nats.creds of a required Secret volume
 * of its own Secret, which no other Deployment mounts; without (dev), NATS_CREDS_FILE is unset
 * and that Secret, if mounted, optional. The signer is given no NATS credential at all.
 */
function natsCredsProblems(objs: K8sObject[], required: boolean): string[] {
  const problems: string[] = [];
  const ours = new Set<string>(Object.values(NATS_CLIENTS));
  const byName = deployments(objs).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  for (const d of byName) {
    const name = d.metadata.name;
    const pod = d.spec.template.spec;
    const own: string | undefined = NATS_CLIENTS[name as keyof typeof NATS_CLIENTS];
    for (const v of pod.volumes ?? [])
      if (v.secret && ours.has(v.secret.secretName) && v.secret.secretName !== own)
        problems.push(`${name}: mounts the NATS credentials ${v.secret.secretName}`);
    for (const c of allContainers(d)) {
      const env = containerEnv(objs, c);
      const given = NATS_AUTH_SETTINGS.filter((s) => env[s] !== undefined);
      if (own === undefined || c !== pod.containers[0]) {
        if (given.length > 0) problems.push(`${name}/${c.name}: NATS credentials ${given.join(", ")}`);
        continue;
      }
      const volume = pod.volumes?.find((v) => v.secret?.secretName === own);
      if (!required) {
        if (given.length > 0) problems.push(`${name}: ${given.join(", ")} set without NATS auth`);
        if (volume && volume.secret?.optional !== true)
          problems.push(`${name}: the Secret ${own} is required without NATS auth`);
        continue;
      }
      if (given.join() !== "NATS_CREDS_FILE")
        problems.push(`${name}: NATS credentials ${JSON.stringify(given)}, not NATS_CREDS_FILE alone`);
      const path = env["NATS_CREDS_FILE"];
      const mount = c.volumeMounts?.find((m) => path?.startsWith(`${m.mountPath}/`));
      const mounted = pod.volumes?.find((v) => v.name === mount?.name);
      if (!mounted?.secret) {
        problems.push(`${name}: NATS_CREDS_FILE ${JSON.stringify(path)} is not in a Secret volume`);
        continue;
      }
      const s = mounted.secret;
      if (s.secretName !== own)
        problems.push(`${name}: NATS_CREDS_FILE is in the Secret ${s.secretName}, not ${own}`);
      if (s.optional === true) problems.push(`${name}: the Secret ${s.secretName} is optional`);
      const file = (path ?? "").slice((mount?.mountPath.length ?? 0) + 1);
      const key = s.items ? s.items.find((i) => i.path === file)?.key : file;
      if (key !== NATS_CREDS_KEY)
        problems.push(`${name}: NATS_CREDS_FILE is not the key ${NATS_CREDS_KEY} of ${s.secretName}`);
    }
  }
  return problems;
}

const PINNED_IMAGE =
  /^([a-z0-9.-]+\/)?[a-z0-9._/-]+:([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})(@sha256:[0-9a-f]{64})?$/;

/** Images without a tag, or tagged latest. */
function imageProblems(objs: K8sObject[]): string[] {
  const problems: string[] = [];
  for (const d of deployments(objs))
    for (const c of allContainers(d)) {
      const m = PINNED_IMAGE.exec(c.image);
      if (!m || m[2] === "latest") problems.push(`${d.metadata.name}/${c.name}: ${c.image}`);
    }
  return problems;
}

/**
 * Anything but the pods of SIGNER_CLIENTS admitted to the signer's gRPC port, one of them not
 * admitted, anything but Prometheus admitted to its ops port, or any other port opened.
 */
function signerIngressProblems(objs: K8sObject[]): string[] {
  const problems: string[] = [];
  const labelsOf = (name: string): Record<string, string> =>
    deployment(objs, name).spec.template.metadata.labels;
  const policies = ofKind<NetworkPolicyObj>(objs, "NetworkPolicy").filter((p) =>
    selects(p.spec.podSelector, labelsOf("ln-signer")),
  );
  if (!policies.some((p) => p.spec.policyTypes.includes("Ingress"))) problems.push("no ingress policy");
  const ops = containerPort(mainContainer(objs, "ln-signer"), "ops");
  const admitted = new Set<string>();
  for (const rule of policies.flatMap((p) => p.spec.ingress ?? [])) {
    if (!rule.from?.length) problems.push("an ingress rule without from admits everyone");
    const ports = JSON.stringify(rule.ports?.map((p) => p.port));
    // Besides gRPC, only Prometheus, on the plain-HTTP ops port alone.
    if (ops !== undefined && ports === JSON.stringify([ops])) {
      if (rule.from?.length && !isDeepStrictEqual(rule.from, [PROMETHEUS_PEER]))
        problems.push(`the ops port admits more than Prometheus: ${JSON.stringify(rule.from)}`);
      continue;
    }
    if (ports !== "[50051]") problems.push(`ports ${JSON.stringify(rule.ports)}`);
    for (const peer of rule.from ?? []) {
      if (peer.ipBlock || peer.namespaceSelector || !peer.podSelector) {
        problems.push(`a peer not limited to this namespace's pods: ${JSON.stringify(peer)}`);
        continue;
      }
      // Each peer selects exactly one service's pods, by its name label.
      const keys = Object.keys(peer.podSelector.matchLabels ?? {});
      if (keys.length !== 1 || keys[0] !== "app.kubernetes.io/name")
        problems.push(`a peer selecting more than one service: ${JSON.stringify(peer)}`);
      const selected = SERVICES.filter((s) => selects(peer.podSelector as LabelSelector, labelsOf(s)));
      if (selected.length === 0)
        problems.push(`a peer selecting none of the services: ${JSON.stringify(peer)}`);
      for (const s of selected) admitted.add(s);
    }
  }
  const clients: readonly string[] = SIGNER_CLIENTS;
  const extra = [...admitted].filter((s) => !clients.includes(s));
  if (extra.length > 0) problems.push(`admits ${extra.join(", ")}`);
  for (const s of SIGNER_CLIENTS) if (!admitted.has(s)) problems.push(`does not admit ${s}`);
  return problems;
}

/**
 * Each of SIGNER_CLIENTS can really call the signer: SIGNER_ADDR names the signer's Service and
 * gRPC port, SIGNER_CLIENT_CA/CERT/KEY are files of one Secret volume, that Secret is the client
 * certificate of a cert-manager Certificate of its own ("client auth", Issuer ln-signer-ca, no
 * other Deployment mounts it), and its NetworkPolicy egress reaches the signer's pods on that port.
 */
function signerClientProblems(objs: K8sObject[]): string[] {
  const problems: string[] = [];
  const signerLabels = deployment(objs, "ln-signer").spec.template.metadata.labels;
  const signerSvc = ofKind<ServiceObj>(objs, "Service").find((x) => x.metadata.name === "ln-signer");
  const grpc = signerSvc?.spec.ports.find((p) => p.port === 50051);
  const certs = ofKind<
    K8sObject & {
      spec: { secretName: string; usages?: string[]; issuerRef: { kind: string; name: string } };
    }
  >(objs, "Certificate");
  const policies = ofKind<NetworkPolicyObj>(objs, "NetworkPolicy");
  for (const name of SIGNER_CLIENTS) {
    const d = deployment(objs, name);
    const c = mainContainer(objs, name);
    const env = containerEnv(objs, c);
    if (env["SIGNER_ADDR"] !== `ln-signer:${grpc?.port ?? 50051}` || !grpc)
      problems.push(
        `${name}: SIGNER_ADDR ${JSON.stringify(env["SIGNER_ADDR"])} is not the Service ln-signer:50051`,
      );
    const volumes = new Set<string>();
    for (const setting of ["SIGNER_CLIENT_CA", "SIGNER_CLIENT_CERT", "SIGNER_CLIENT_KEY"]) {
      const path = env[setting];
      const mount = c.volumeMounts?.find((m) => path?.startsWith(`${m.mountPath}/`));
      const volume = d.spec.template.spec.volumes?.find((v) => v.name === mount?.name);
      if (!volume?.secret)
        problems.push(`${name}: ${setting} ${JSON.stringify(path)} is not in a Secret volume`);
      else volumes.add(volume.secret.secretName);
    }
    if (volumes.size > 1)
      problems.push(`${name}: the client CA, certificate and key come from different Secrets`);
    for (const secretName of volumes) {
      const cert = certs.find((x) => x.spec.secretName === secretName);
      if (!cert) {
        problems.push(`${name}: no Certificate issues the Secret ${secretName}`);
        continue;
      }
      if (!cert.spec.usages?.includes("client auth"))
        problems.push(`${name}: the Certificate ${cert.metadata.name} is not for client auth`);
      if (cert.spec.issuerRef.name !== "ln-signer-ca")
        problems.push(`${name}: the Certificate ${cert.metadata.name} is not issued by ln-signer-ca`);
      const sharers = deployments(objs).filter(
        (o) =>
          o.metadata.name !== name &&
          o.spec.template.spec.volumes?.some((v) => v.secret?.secretName === secretName),
      );
      if (sharers.length > 0)
        problems.push(
          `${name}: its client certificate is also mounted by ${sharers.map((o) => o.metadata.name).join(", ")}`,
        );
    }
    const egress = policies
      .filter((p) => selects(p.spec.podSelector, d.spec.template.metadata.labels))
      .flatMap((p) => p.spec.egress ?? []);
    const reaches = egress.some(
      (r) =>
        r.to?.some((t) => t.podSelector && !t.namespaceSelector && selects(t.podSelector, signerLabels)) &&
        r.ports?.some((p) => p.port === 50051),
    );
    if (!reaches) problems.push(`${name}: no egress to the signer's port 50051`);
  }
  return problems;
}

type CertificateObj = K8sObject & {
  spec: { secretName: string; commonName?: string; issuerRef: { kind: string; name: string } };
};

/**
 * Each of SIGNER_CLIENTS presents a certificate whose commonName the signer's SIGNER_CLIENTS maps
 * to that client's role (SIGNER_CLIENT_ROLES), and SIGNER_CLIENTS names no other CN. Reads the
 * setting with the signer's own parser (loadSignerConfig).
 */
function signerPermissionProblems(objs: K8sObject[]): string[] {
  const problems: string[] = [];
  const clients = loadSignerConfig(containerEnv(objs, mainContainer(objs, "ln-signer"))).clients;
  const certs = ofKind<CertificateObj>(objs, "Certificate");
  const seen = new Set<string>();
  for (const name of SIGNER_CLIENTS) {
    const d = deployment(objs, name);
    const certPath = containerEnv(objs, mainContainer(objs, name))["SIGNER_CLIENT_CERT"];
    const mount = mainContainer(objs, name).volumeMounts?.find((m) =>
      certPath?.startsWith(`${m.mountPath}/`),
    );
    const secretName = d.spec.template.spec.volumes?.find((v) => v.name === mount?.name)?.secret?.secretName;
    const cn = certs.find((c) => c.spec.secretName === secretName)?.spec.commonName;
    if (cn === undefined) {
      problems.push(`${name}: its client certificate has no commonName`);
      continue;
    }
    seen.add(cn);
    const role = clients.get(cn);
    if (role !== SIGNER_CLIENT_ROLES[name])
      problems.push(
        `${name}: its certificate's CN ${cn} has the role ${String(role)} in SIGNER_CLIENTS, not ${SIGNER_CLIENT_ROLES[name]}`,
      );
  }
  for (const cn of clients.keys())
    if (!seen.has(cn)) problems.push(`SIGNER_CLIENTS names ${cn}, the CN of none of the signer's clients`);
  return problems;
}

/**
 * The seed key: SIGNER_SEED_KEY_FILE is the key "key" of the Secret ln-signer-seed-key, mounted
 * read-only and not readable by others; no SIGNER_SEED_KEY in the environment.
 */
function seedKeyProblems(objs: K8sObject[]): string[] {
  const problems: string[] = [];
  const d = deployment(objs, "ln-signer");
  const c = mainContainer(objs, "ln-signer");
  const env = containerEnv(objs, c);
  if ("SIGNER_SEED_KEY" in env) problems.push("SIGNER_SEED_KEY is set");
  const path = env["SIGNER_SEED_KEY_FILE"] ?? "";
  const mount = c.volumeMounts?.find((m) => path.startsWith(`${m.mountPath}/`)) as
    { name: string; mountPath: string; readOnly?: boolean } | undefined;
  const secret = d.spec.template.spec.volumes?.find((v) => v.name === mount?.name)?.secret;
  if (!mount || secret?.secretName !== "ln-signer-seed-key") {
    problems.push(
      `SIGNER_SEED_KEY_FILE ${JSON.stringify(path)} is not in a volume of the Secret ln-signer-seed-key`,
    );
    return problems;
  }
  if (!mount.readOnly) problems.push("the seed key's volume is not mounted read-only");
  const file = path.slice(mount.mountPath.length + 1);
  const item = secret.items?.find((i) => i.path === file);
  if (secret.items ? item?.key !== "key" : file !== "key")
    problems.push(`SIGNER_SEED_KEY_FILE is not the Secret's key "key"`);
  // Kubernetes' default is 0644: the signer would refuse to start.
  const mode = item?.mode ?? secret.defaultMode ?? 0o644;
  if ((mode & 0o037) !== 0) problems.push(`the seed key file has mode 0${mode.toString(8)}`);
  return problems;
}

type ClusterObj = K8sObject & {
  spec: {
    instances: number;
    bootstrap?: { initdb?: { database?: string; owner?: string; postInitApplicationSQL?: string[] } };
    managed?: { roles?: { name: string }[] };
    backup?: { barmanObjectStore?: { destinationPath?: string } };
  };
};

/**
 * The signer's state in its own CloudNativePG cluster (DESIGN.md 4): SIGNER_DATABASE_URL names the
 * cluster ln-signer-pg (not ln-pg, which holds no signer role or schema); that cluster's Postgres
 * admits only the signer (and its own instances, the operator), the signer reaches only it, and
 * its backups (if any) go to a path of their own.
 */
function signerDatabaseProblems(objs: K8sObject[]): string[] {
  const problems: string[] = [];
  const clusters = ofKind<ClusterObj>(objs, "Cluster");
  const main = clusters.find((c) => c.metadata.name === "ln-pg");
  const own = clusters.find((c) => c.metadata.name === "ln-signer-pg");
  if (!main || !own) return [`clusters ${clusters.map((c) => c.metadata.name).join(", ")}`];
  const url = new URL(containerEnv(objs, mainContainer(objs, "ln-signer"))["SIGNER_DATABASE_URL"] ?? "");
  if (url.hostname !== "ln-signer-pg-rw") problems.push(`the signer's database is at ${url.hostname}`);
  const initdb = own.spec.bootstrap?.initdb;
  if (url.pathname !== `/${initdb?.database}` || url.username !== initdb?.owner)
    problems.push(`the signer's URL is not the database ${initdb?.database} of ${initdb?.owner}`);
  const sql = (main.spec.bootstrap?.initdb?.postInitApplicationSQL ?? []).join("\n");
  if (/\bsigner\b/.test(sql) || main.spec.managed?.roles?.some((r) => r.name === "signer"))
    problems.push("ln-pg makes a signer role or schema");
  const mainPath = main.spec.backup?.barmanObjectStore?.destinationPath;
  const ownPath = own.spec.backup?.barmanObjectStore?.destinationPath;
  if (
    ownPath !== undefined &&
    mainPath !== undefined &&
    (ownPath.startsWith(mainPath) || mainPath.startsWith(ownPath))
  )
    problems.push(`ln-signer-pg backs up into ln-pg's path ${mainPath}`);
  // Who reaches the signer's Postgres pods: by ingress policy, and by each service's egress.
  const pgLabels = { "cnpg.io/cluster": "ln-signer-pg" };
  const policies = ofKind<NetworkPolicyObj>(objs, "NetworkPolicy");
  for (const p of policies.filter((x) => selects(x.spec.podSelector, pgLabels)))
    for (const peer of (p.spec.ingress ?? []).flatMap((r) => r.from ?? [{}])) {
      if (
        peer.namespaceSelector?.matchLabels?.["kubernetes.io/metadata.name"] === "cnpg-system" &&
        !peer.podSelector
      )
        continue;
      if (peer.podSelector && !peer.namespaceSelector) {
        const admitted = SERVICES.filter((s) =>
          selects(peer.podSelector as LabelSelector, deployment(objs, s).spec.template.metadata.labels),
        );
        const own = isDeepStrictEqual(peer.podSelector.matchLabels, pgLabels);
        if (own || (admitted.length === 1 && admitted[0] === "ln-signer")) continue;
      }
      problems.push(`${p.metadata.name} admits ${JSON.stringify(peer)} to ln-signer-pg`);
    }
  for (const name of SERVICES.filter((s) => s !== "ln-signer")) {
    const labels = deployment(objs, name).spec.template.metadata.labels;
    const reaches = policies
      .filter((p) => selects(p.spec.podSelector, labels))
      .flatMap((p) => p.spec.egress ?? [])
      .some((r) =>
        r.to?.some((t) => t.podSelector && !t.namespaceSelector && selects(t.podSelector, pgLabels)),
      );
    if (reaches) problems.push(`${name} may reach ln-signer-pg`);
  }
  return problems;
}

/** The port of a container's "host:port" setting (NaN if it is not one). */
const listenPort = (objs: K8sObject[], c: Container, setting: string): number =>
  Number(/:(\d+)$/.exec(containerEnv(objs, c)[setting] ?? "")?.[1]);

/**
 * Prometheus (namespace monitoring) reaches every service's metrics port; on the ops port of
 * signer, peer and watchtower nothing else is admitted, and Prometheus is admitted to nothing
 * else there.
 */
function metricsIngressProblems(objs: K8sObject[]): string[] {
  const problems: string[] = [];
  const policies = ofKind<NetworkPolicyObj>(objs, "NetworkPolicy");
  for (const name of SERVICES) {
    const d = deployment(objs, name);
    const c = mainContainer(objs, name);
    const port = listenPort(objs, c, METRICS_LISTEN[name]);
    const isOps = name in OPS_SERVICES;
    if (isOps && containerPort(c, "ops") !== port)
      problems.push(`${name}: the container port "ops" is not ${METRICS_LISTEN[name]}'s port ${port}`);
    const covers = (rule: NetworkPolicyRule): boolean =>
      !rule.ports?.length ||
      rule.ports.some((x) => {
        if (x.port === undefined) return true;
        const n = containerPort(c, x.port);
        return n === port || (n !== undefined && x.endPort !== undefined && n <= port && port <= x.endPort);
      });
    let reached = false;
    for (const p of policies.filter((x) => selects(x.spec.podSelector, d.spec.template.metadata.labels)))
      for (const rule of p.spec.ingress ?? []) {
        const fromPrometheus = rule.from?.some((f) => isDeepStrictEqual(f, PROMETHEUS_PEER)) ?? false;
        if (covers(rule) && fromPrometheus) reached = true;
        if (!isOps) continue;
        if (covers(rule)) {
          const others = rule.from?.length
            ? rule.from.filter((f) => !isDeepStrictEqual(f, PROMETHEUS_PEER))
            : ["everyone"];
          if (others.length > 0)
            problems.push(
              `${name}: ${p.metadata.name} admits ${JSON.stringify(others)} to the ops port ${port}`,
            );
        }
        if (
          fromPrometheus &&
          JSON.stringify(rule.ports?.map((x) => containerPort(c, x.port))) !== `[${port}]`
        )
          problems.push(`${name}: ${p.metadata.name} admits Prometheus to ${JSON.stringify(rule.ports)}`);
      }
    if (!reached) problems.push(`${name}: Prometheus cannot reach port ${port}`);
  }
  return problems;
}

/**
 * Every service is scraped: a ServiceMonitor selects a Service of its pods whose endpoint port
 * leads to the port /metrics is served on. No LoadBalancer or NodePort Service carries an ops port.
 */
function monitoringProblems(objs: K8sObject[]): string[] {
  const problems: string[] = [];
  const services = ofKind<ServiceObj>(objs, "Service");
  const monitors = ofKind<ServiceMonitorObj>(objs, "ServiceMonitor");
  const podsOf = (svc: ServiceObj, d: DeploymentObj): boolean =>
    svc.spec.selector !== undefined &&
    Object.keys(svc.spec.selector).length > 0 &&
    selects({ matchLabels: svc.spec.selector }, d.spec.template.metadata.labels);
  for (const name of SERVICES) {
    const d = deployment(objs, name);
    const c = mainContainer(objs, name);
    const port = listenPort(objs, c, METRICS_LISTEN[name]);
    const scraped = monitors.some(
      (m) =>
        m.spec.namespaceSelector === undefined &&
        services.some(
          (svc) =>
            svc.metadata.namespace === m.metadata.namespace &&
            selects(m.spec.selector, (svc.metadata["labels"] as Record<string, string> | undefined) ?? {}) &&
            podsOf(svc, d) &&
            m.spec.endpoints.some(
              (e) =>
                e.path === "/metrics" &&
                (e.scheme ?? "http") === "http" &&
                svc.spec.ports.some(
                  (sp) => sp.name === e.port && containerPort(c, sp.targetPort ?? sp.port) === port,
                ),
            ),
        ),
    );
    if (!scraped) problems.push(`${name}: no ServiceMonitor scrapes /metrics on port ${port}`);
  }
  for (const svc of services) {
    if (svc.spec.type !== "LoadBalancer" && svc.spec.type !== "NodePort") continue;
    for (const d of deployments(objs)) {
      if (!podsOf(svc, d)) continue;
      const c = d.spec.template.spec.containers[0] as Container;
      const ops = containerPort(c, "ops");
      for (const sp of svc.spec.ports)
        if (ops !== undefined && containerPort(c, sp.targetPort ?? sp.port) === ops)
          problems.push(`${svc.metadata.name} (${svc.spec.type}) exposes the ops port of ${d.metadata.name}`);
    }
  }
  return problems;
}

// ---- tests ------------------------------------------------------------------------------------

describe("rendering", () => {
  it.skipIf(!KUBECTL)("render.ts renders every kustomization exactly as kubectl kustomize does", () => {
    for (const dir of ["base", "overlays/dev", "overlays/production"]) {
      const ours = byId(renderKustomization(join(DEPLOY, dir)));
      const overlay = OVERLAYS.find((o) => dir === `overlays/${o}`);
      const theirs = byId(overlay ? render(overlay) : kubectlKustomize(join(DEPLOY, dir)));
      expect(Object.keys(ours).sort(), dir).toEqual(Object.keys(theirs).sort());
      expect(ours, dir).toEqual(theirs);
    }
  });

  it("every object has a unique kind/namespace/name", () => {
    for (const overlay of OVERLAYS) {
      const objs = render(overlay);
      expect(Object.keys(byId(objs)).length).toBe(objs.length);
    }
  });
});

describe.each(OVERLAYS)("overlay %s", (overlay) => {
  const objs = (): K8sObject[] => render(overlay);

  it("every object is valid against the schema of its kind", () => {
    for (const o of objs()) {
      const key = `${o.apiVersion}/${o.kind}`;
      const Model = MODELS[key];
      if (Model) {
        expect(() => new Model(o as never).validate(), `${id(o)}`).not.toThrow();
      } else {
        expect(UNMODELLED.has(key), `${key} has neither a model nor a structural check`).toBe(true);
        expect(o.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
        expect(o["spec"], id(o)).toBeTypeOf("object");
      }
      if (o.kind !== "Namespace")
        expect(o.metadata.namespace, id(o)).toBe(overlay === "dev" ? "ln-dev" : "ln-prod");
    }
  });

  it("has the four services with a Deployment, a PodDisruptionBudget, a ConfigMap and a NetworkPolicy each", () => {
    const o = objs();
    for (const name of SERVICES) {
      const d = deployment(o, name);
      const labels = d.spec.template.metadata.labels;
      expect(selects(d.spec.selector, labels)).toBe(true);
      expect(
        ofKind<K8sObject & { spec: { selector: LabelSelector } }>(o, "PodDisruptionBudget").some((p) =>
          selects(p.spec.selector, labels),
        ),
        name,
      ).toBe(true);
      expect(
        o.some((x) => x.kind === "ConfigMap" && x.metadata.name === name),
        name,
      ).toBe(true);
      expect(
        ofKind<NetworkPolicyObj>(o, "NetworkPolicy").some(
          (p) => p.metadata.name === name && selects(p.spec.podSelector, labels),
        ),
      ).toBe(true);
    }
    for (const name of SERVICES)
      expect(
        o.some((x) => x.kind === "Service" && x.metadata.name === name),
        name,
      ).toBe(true);
  });

  it("every container has readiness and liveness probes, requests and limits, and the restricted securityContext", () => {
    for (const d of deployments(objs())) {
      const pod = d.spec.template.spec;
      expect(pod.securityContext?.runAsNonRoot, d.metadata.name).toBe(true);
      expect(pod.securityContext?.seccompProfile?.type, d.metadata.name).toBe("RuntimeDefault");
      for (const c of allContainers(d)) {
        const where = `${d.metadata.name}/${c.name}`;
        if (!pod.initContainers?.includes(c)) {
          expect(c.readinessProbe, where).toBeDefined();
          expect(c.livenessProbe, where).toBeDefined();
        }
        for (const r of ["cpu", "memory"]) {
          expect(c.resources?.requests?.[r], `${where} requests.${r}`).toBeDefined();
          expect(c.resources?.limits?.[r], `${where} limits.${r}`).toBeDefined();
        }
        const sc = c.securityContext;
        expect(sc?.runAsNonRoot, where).toBe(true);
        expect(sc?.readOnlyRootFilesystem, where).toBe(true);
        expect(sc?.allowPrivilegeEscalation, where).toBe(false);
        expect(sc?.capabilities?.drop, where).toEqual(["ALL"]);
        expect(sc?.capabilities?.add ?? [], where).toEqual([]);
        expect(sc?.seccompProfile?.type, where).toBe("RuntimeDefault");
        // A read-only root filesystem needs a writable /tmp.
        const tmp = c.volumeMounts?.find((m) => m.mountPath === "/tmp");
        expect(pod.volumes?.find((v) => v.name === tmp?.name)?.emptyDir, `${where} /tmp`).toBeDefined();
      }
    }
  });

  it("probes point at the ports the services listen on", () => {
    const o = objs();
    // Every service: HTTP probes on the ops port, <PREFIX>_OPS_LISTEN.
    for (const [name, prefix] of Object.entries(OPS_SERVICES)) {
      const c = mainContainer(o, name);
      const setting = `${prefix}_OPS_LISTEN`;
      const ops = listenPort(o, c, setting);
      expect(ops, `${name}: ${setting}`).toBeGreaterThan(0);
      // The kubelet probes the pod's address: a loopback-only listener would fail every probe.
      expect(containerEnv(o, c)[setting], setting).toMatch(/^(0\.0\.0\.0|\[::\]):\d+$/);
      expect(c.ports?.find((p) => p.name === "ops")?.containerPort, name).toBe(ops);
      for (const own of [`${prefix}_LISTEN`, `${prefix}_API_LISTEN`])
        expect(ops, `${name}: the ops port is not the service's own listener ${own}`).not.toBe(
          listenPort(o, c, own),
        );
      const probes = { readinessProbe: "/readyz", livenessProbe: "/healthz", startupProbe: "/healthz" };
      for (const [kind, path] of Object.entries(probes)) {
        const probe = c[kind as keyof typeof probes];
        if (kind === "startupProbe" && !probe) continue;
        expect(probe?.httpGet?.path, `${name} ${kind}`).toBe(path);
        expect(probe?.httpGet?.port, `${name} ${kind}`).toBe("ops");
        expect(containerPort(c, probe?.httpGet?.port), `${name} ${kind}`).toBe(ops);
      }
    }
  });

  it("no Secret carries values, and secret-looking settings come from secretKeyRef", () => {
    expect(secretProblems(objs())).toEqual([]);
  });

  it("each service's configuration loads from the environment the manifests give it", () => {
    const o = objs();
    const loaders: Record<string, (env: Record<string, string>) => unknown> = {
      "ln-signer": loadSignerConfig,
      "ln-channel": loadChannelConfig,
      "ln-peer": loadPeerConfig,
      "ln-watchtower": loadWatchtowerConfig,
    };
    for (const name of SERVICES) {
      const c = deployment(o, name).spec.template.spec.containers[0] as Container;
      const env = containerEnv(o, c);
      expect(() => loaders[name]?.(env), name).not.toThrow();
      // Every file path the service reads lies in one of its volumes.
      for (const [k, v] of Object.entries(env))
        if (/^\/(etc|var)\//.test(v))
          expect(
            c.volumeMounts?.some((m) => v.startsWith(`${m.mountPath}/`)),
            `${name}: ${k}=${v}`,
          ).toBe(true);
    }
  });

  it("channel, peer and watchtower each call the signer with a client certificate of their own", () => {
    expect(signerClientProblems(objs())).toEqual([]);
  });

  it("each signer client's certificate CN has its role in the signer's SIGNER_CLIENTS", () => {
    expect(signerPermissionProblems(objs())).toEqual([]);
  });

  it("the signer reads its seed key from a file of the Secret ln-signer-seed-key only it can read", () => {
    expect(seedKeyProblems(objs())).toEqual([]);
  });

  it("the signer's state has its own CloudNativePG cluster, which only the signer reaches", () => {
    const o = objs();
    expect(signerDatabaseProblems(o)).toEqual([]);
    const own = ofKind<ClusterObj>(o, "Cluster").find((c) => c.metadata.name === "ln-signer-pg");
    if (overlay === "production") {
      // Replicated, with its own backups (restored alone, to the end of its WAL: deploy/README.md).
      expect(own?.spec.instances).toBeGreaterThanOrEqual(3);
      expect(own?.spec.backup?.barmanObjectStore?.destinationPath).toBeDefined();
      expect(
        o.some(
          (x) =>
            x.kind === "ScheduledBackup" &&
            (x["spec"] as { cluster: { name: string } }).cluster.name === "ln-signer-pg",
        ),
      ).toBe(true);
    }
  });

  it("the watchtower runs justice on the records the channel service publishes", () => {
    const o = objs();
    const env = containerEnv(o, mainContainer(o, "ln-watchtower"));
    const justice = loadWatchtowerConfig(env).justice;
    expect(justice, "justice is off: SIGNER_ADDR is unset").toBeDefined();
    expect(justice?.recordsSubject).toBe(towerRecordsSubject(env["LN_PREFIX"] as string));
    expect(justice?.signer.certFile).toBe("/etc/ln/signer-client/tls.crt");
    // DESIGN.md 7 defaults; production buries deeper (overlays/production/kustomization.yaml).
    expect(justice?.bumpBlocks).toBe(2);
    expect(justice?.buryDepth).toBe(overlay === "production" ? 12 : 6);
  });

  it("mounted TLS Secrets are issued by cert-manager Certificates from the Issuer ln-signer-ca", () => {
    const o = objs();
    const certs = ofKind<
      K8sObject & { spec: { secretName: string; issuerRef: { kind: string; name: string } } }
    >(o, "Certificate");
    const issuers = o.filter((x) => x.kind === "Issuer").map((x) => x.metadata.name);
    for (const cert of certs) expect(issuers, id(cert)).toContain(cert.spec.issuerRef.name);
    for (const d of deployments(o))
      for (const v of d.spec.template.spec.volumes ?? [])
        if (v.secret && !OTHER_OPERATOR_SECRETS.includes(v.secret.secretName)) {
          const cert = certs.find((c) => c.spec.secretName === v.secret?.secretName);
          expect(cert, `${d.metadata.name}: volume ${v.name}`).toBeDefined();
          expect(cert?.spec.issuerRef.name).toBe("ln-signer-ca");
        }
  });

  it(
    overlay === "production"
      ? "channel, peer and watchtower each read NATS_CREDS_FILE from a required Secret volume of their own; the signer has no NATS credentials"
      : "NATS without auth: NATS_CREDS_FILE unset, the NATS credentials Secrets optional; the signer has no NATS credentials",
    () => {
      const o = objs();
      expect(natsCredsProblems(o, overlay === "production")).toEqual([]);
      for (const name of Object.keys(NATS_CLIENTS))
        expect(
          deployment(o, name).spec.template.spec.volumes?.some(
            (v) => v.secret?.secretName === NATS_CLIENTS[name as keyof typeof NATS_CLIENTS],
          ),
          name,
        ).toBe(true);
    },
  );

  it("every image is pinned by a tag that is not latest", () => {
    expect(imageProblems(objs())).toEqual([]);
  });

  it("the signer runs alone: 1 replica, Recreate, no autoscaler", () => {
    const o = objs();
    const signer = deployment(o, "ln-signer");
    expect(signer.spec.replicas).toBe(1);
    expect(signer.spec.strategy?.type).toBe("Recreate");
    expect(
      ofKind<HpaObj>(o, "HorizontalPodAutoscaler").filter((h) => h.spec.scaleTargetRef.name === "ln-signer"),
    ).toEqual([]);
  });

  it("every service's /metrics is scraped by a ServiceMonitor; no public Service carries an ops port", () => {
    expect(monitoringProblems(objs())).toEqual([]);
  });

  it("network policies: default deny, DNS for all, the signer reached only by channel, peer and watchtower, ops ports only by Prometheus", () => {
    const o = objs();
    const policies = ofKind<NetworkPolicyObj>(o, "NetworkPolicy");
    const labelsOf = (name: string): Record<string, string> =>
      deployment(o, name).spec.template.metadata.labels;

    for (const name of SERVICES) {
      const labels = labelsOf(name);
      const applying = policies.filter((p) => selects(p.spec.podSelector, labels));
      // Default deny: some policy selects the pod for both directions with no rules at all.
      expect(
        applying.some(
          (p) =>
            p.spec.policyTypes.includes("Ingress") &&
            p.spec.policyTypes.includes("Egress") &&
            !p.spec.ingress &&
            !p.spec.egress,
        ),
        name,
      ).toBe(true);
      // DNS
      expect(
        applying.some((p) =>
          p.spec.egress?.some((r) => r.ports?.some((x) => x.port === 53 && x.protocol === "UDP")),
        ),
        name,
      ).toBe(true);
    }

    expect(signerIngressProblems(o)).toEqual([]);
    expect(metricsIngressProblems(o)).toEqual([]);
    const signerPolicies = policies.filter((p) => selects(p.spec.podSelector, labelsOf("ln-signer")));
    // The signer reaches only its own Postgres cluster (and DNS).
    for (const rule of signerPolicies.flatMap((p) => p.spec.egress ?? [])) {
      const isDns = rule.ports?.every((x) => x.port === 53);
      if (isDns) continue;
      expect(rule.to).toEqual([{ podSelector: { matchLabels: { "cnpg.io/cluster": "ln-signer-pg" } } }]);
      expect(rule.ports).toEqual([{ protocol: "TCP", port: 5432 }]);
    }
    // Only the peer gateway accepts connections from anywhere, on the Lightning port only.
    for (const p of policies)
      for (const rule of p.spec.ingress ?? [])
        if (!rule.from) {
          expect(p.metadata.name).toBe("ln-peer");
          expect(rule.ports).toEqual([{ protocol: "TCP", port: 9735 }]);
        }
  });

  it("deploy/README.md names every Secret the operator must create", () => {
    const readme = readFileSync(join(DEPLOY, "README.md"), "utf8");
    for (const name of [...Object.keys(OPERATOR_SECRETS), ...OTHER_OPERATOR_SECRETS])
      expect(readme, name).toContain(name);
  });

  if (overlay === "dev")
    it("dev runs one replica of each service", () => {
      const o = objs();
      const hpas = ofKind<HpaObj>(o, "HorizontalPodAutoscaler");
      for (const d of deployments(o)) {
        const hpa = hpas.find((h) => h.spec.scaleTargetRef.name === d.metadata.name);
        if (hpa) expect([hpa.spec.minReplicas, hpa.spec.maxReplicas], d.metadata.name).toEqual([1, 1]);
        else expect(d.spec.replicas ?? 1, d.metadata.name).toBe(1);
      }
    });

  if (overlay === "production")
    it("production scales channel, peer and watchtower and runs a CloudNativePG cluster", () => {
      const o = objs();
      const hpas = ofKind<HpaObj>(o, "HorizontalPodAutoscaler");
      const hpa = (name: string): HpaObj | undefined =>
        hpas.find((h) => h.spec.scaleTargetRef.kind === "Deployment" && h.spec.scaleTargetRef.name === name);
      expect(hpa("ln-peer")?.spec.minReplicas).toBeGreaterThanOrEqual(2);
      expect(hpa("ln-watchtower")?.spec.minReplicas).toBe(2);
      // With an HPA the Deployment leaves spec.replicas to it.
      expect(deployment(o, "ln-peer").spec.replicas).toBeUndefined();
      expect(deployment(o, "ln-watchtower").spec.replicas).toBeUndefined();
      expect(deployment(o, "ln-channel").spec.replicas).toBeGreaterThanOrEqual(2);
      for (const name of ["ln-channel", "ln-peer", "ln-watchtower"]) {
        const spec = deployment(o, name).spec.template.spec as PodSpec & {
          topologySpreadConstraints?: unknown[];
          affinity?: { podAntiAffinity?: unknown };
        };
        expect(
          Boolean(spec.topologySpreadConstraints?.length) || Boolean(spec.affinity?.podAntiAffinity),
          name,
        ).toBe(true);
      }
      const pg = o.find(
        (x) =>
          x.kind === "Cluster" && x.apiVersion === "postgresql.cnpg.io/v1" && x.metadata.name === "ln-pg",
      ) as (K8sObject & { spec: { instances: number; backup?: unknown } }) | undefined;
      expect(pg?.metadata.name).toBe("ln-pg");
      expect(pg?.spec.instances).toBeGreaterThanOrEqual(3);
      expect(pg?.spec.backup).toBeDefined();
      expect(o.some((x) => x.kind === "ScheduledBackup")).toBe(true);
    });
});

/** Whether NATS subject `subject` matches `pattern` (`*` one token, `>` the rest). */
function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const t = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return t.length > i;
    if (i >= t.length || (p[i] !== "*" && p[i] !== t[i])) return false;
  }
  return p.length === t.length;
}

/** The channel user's publish permissions in deploy/README.md's nsc commands, variables expanded. */
function readmeChannelPublish(): { prefix: string; allowed: string[] } {
  const readme = readFileSync(join(DEPLOY, "README.md"), "utf8");
  const vars = /^P=(\S+) C=(\S+) E=(\S+)$/m.exec(readme);
  const pub = /nsc add user --account LN channel [^\n]*\\\n\s*--allow-pub "([^"]+)"/.exec(readme);
  if (!vars || !pub)
    throw new Error("deploy/README.md lacks the P=/C=/E= line or the channel user's --allow-pub");
  const [, P = "", C = "", E = ""] = vars;
  const allowed = (pub[1] ?? "")
    .replaceAll("\\$", "$")
    .replaceAll("$P", P)
    .replaceAll("$C", C)
    .replaceAll("$E", E)
    .split(",");
  return { prefix: P, allowed };
}

describe("NATS permissions (deploy/README.md, NATS users)", () => {
  it("the channel user may publish the status events, manage their stream, and send the replicas' notices", () => {
    const { prefix, allowed } = readmeChannelPublish();
    const stream = defaultEventsStreamName(prefix);
    const needed = [
      ...(["payment", "invoice", "channel"] as const).map((k) => eventSubject(prefix, k)),
      // nats.js JetStreamManager: streams.info / add / update of the events stream.
      `$JS.API.STREAM.INFO.${stream}`,
      `$JS.API.STREAM.CREATE.${stream}`,
      `$JS.API.STREAM.UPDATE.${stream}`,
      towerRecordsSubject(prefix),
      // The notices between replicas (forwarding/forwarder.ts, payments/payer.ts).
      `${prefix}.forwards`,
      `${prefix}.payments`,
    ];
    for (const subject of needed)
      expect(
        allowed.some((a) => subjectMatches(a, subject)),
        subject,
      ).toBe(true);
    // No more than that: nothing else of JetStream's stream API.
    expect(allowed.some((a) => subjectMatches(a, `$JS.API.STREAM.DELETE.${stream}`))).toBe(false);
    const configmap = readFileSync(join(DEPLOY, "base/common/configmap.yaml"), "utf8");
    expect(configmap).toContain(`LN_PREFIX: ${prefix}`);
  });

  it("subjectMatches follows NATS wildcards", () => {
    expect(subjectMatches("a.events.>", "a.events.payment")).toBe(true);
    expect(subjectMatches("a.events.>", "a.events")).toBe(false);
    expect(subjectMatches("a.*.x", "a.b.x")).toBe(true);
    expect(subjectMatches("a.*.x", "a.b.c.x")).toBe(false);
    expect(subjectMatches("a.b", "a.b.c")).toBe(false);
  });
});

describe("the policy checks find violations", () => {
  const prod = (): K8sObject[] => render("production");
  const find = (objs: K8sObject[], kind: string, name: string): K8sObject & { spec: never } => {
    const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
    if (!o) throw new Error(`no ${kind} ${name}`);
    return o as K8sObject & { spec: never };
  };

  it("a Secret with data, a token as a plain value", () => {
    const o = prod();
    o.push({ apiVersion: "v1", kind: "Secret", metadata: { name: "x" }, data: { a: "Yg==" } });
    const env = deployment(o, "ln-channel").spec.template.spec.containers[0]?.env ?? [];
    const token = env.find((e) => e.name === "CHANNEL_ADMIN_TOKEN") as EnvVar;
    delete token.valueFrom;
    token.value = "t".repeat(40);
    expect(secretProblems(o)).toEqual([
      "Secret//x holds values",
      "ln-channel/channel: CHANNEL_ADMIN_TOKEN is neither a secretKeyRef nor a path in a Secret volume",
    ]);
  });

  it("NATS credentials shared, optional, given twice, unset, or given to the signer", () => {
    let o = prod();
    const volumeOf = (name: string): Volume =>
      deployment(o, name).spec.template.spec.volumes?.find((v) => v.name === "nats-creds") as Volume;
    (volumeOf("ln-peer").secret as { secretName: string }).secretName = "ln-nats-channel-creds";
    expect(natsCredsProblems(o, true)).toEqual([
      "ln-peer: mounts the NATS credentials ln-nats-channel-creds",
      "ln-peer: NATS_CREDS_FILE is in the Secret ln-nats-channel-creds, not ln-nats-peer-creds",
    ]);
    o = prod();
    (volumeOf("ln-watchtower").secret as { optional?: boolean }).optional = true;
    const cm = find(o, "ConfigMap", "ln-channel") as unknown as { data: Record<string, string> };
    cm.data["NATS_TOKEN"] = "t".repeat(40);
    expect(natsCredsProblems(o, true)).toEqual([
      'ln-channel: NATS credentials ["NATS_CREDS_FILE","NATS_TOKEN"], not NATS_CREDS_FILE alone',
      "ln-watchtower: the Secret ln-nats-watchtower-creds is optional",
    ]);
    // A token in a ConfigMap is a secret value in a manifest.
    expect(secretProblems(o)).toEqual([
      "ln-channel/channel: NATS_TOKEN is neither a secretKeyRef nor a path in a Secret volume",
    ]);
    o = prod();
    delete (find(o, "ConfigMap", "ln-peer") as unknown as { data: Record<string, string> }).data[
      "NATS_CREDS_FILE"
    ];
    const signer = deployment(o, "ln-signer").spec.template.spec;
    signer.volumes?.push({ name: "nats", secret: { secretName: "ln-nats-watchtower-creds" } });
    (signer.containers[0] as Container).env?.push({ name: "NATS_CREDS_FILE", value: "/tmp/nats.creds" });
    expect(natsCredsProblems(o, true)).toEqual([
      "ln-peer: NATS credentials [], not NATS_CREDS_FILE alone",
      "ln-peer: NATS_CREDS_FILE undefined is not in a Secret volume",
      "ln-signer: mounts the NATS credentials ln-nats-watchtower-creds",
      "ln-signer/signer: NATS credentials NATS_CREDS_FILE",
    ]);
    // A .creds file outside a Secret volume is a secret in the image or on a writable volume.
    expect(secretProblems(o)).toEqual([
      "ln-signer/signer: NATS_CREDS_FILE is neither a secretKeyRef nor a path in a Secret volume",
    ]);
    // Production's manifests are not dev's: credentials set and required.
    expect(natsCredsProblems(prod(), false)).toEqual([
      "ln-channel: NATS_CREDS_FILE set without NATS auth",
      "ln-channel: the Secret ln-nats-channel-creds is required without NATS auth",
      "ln-peer: NATS_CREDS_FILE set without NATS auth",
      "ln-peer: the Secret ln-nats-peer-creds is required without NATS auth",
      "ln-watchtower: NATS_CREDS_FILE set without NATS auth",
      "ln-watchtower: the Secret ln-nats-watchtower-creds is required without NATS auth",
    ]);
  });

  it("an image tagged latest or untagged", () => {
    const o = prod();
    (deployment(o, "ln-peer").spec.template.spec.containers[0] as Container).image =
      "ghcr.io/example/ln-peer:latest";
    (deployment(o, "ln-signer").spec.template.spec.containers[0] as Container).image =
      "ghcr.io/example/ln-signer";
    expect(imageProblems(o)).toHaveLength(2);
  });

  it("the watchtower shut out of the signer; another service, unknown pods or another namespace admitted", () => {
    const o = prod();
    const np = find(o, "NetworkPolicy", "ln-signer") as unknown as NetworkPolicyObj;
    const from = np.spec.ingress?.[0]?.from as NetworkPeer[];
    from.splice(
      from.findIndex((f) => f.podSelector?.matchLabels?.["app.kubernetes.io/name"] === "ln-watchtower"),
      1,
    );
    expect(signerIngressProblems(o)).toEqual(["does not admit ln-watchtower"]);
    from.push({ podSelector: { matchLabels: { "app.kubernetes.io/name": "ln-watchtower" } } });
    from.push({ podSelector: { matchLabels: { "app.kubernetes.io/name": "ln-signer" } } });
    expect(signerIngressProblems(o)).toEqual(["admits ln-signer"]);
    from.pop();
    from.push({ podSelector: { matchLabels: { "app.kubernetes.io/name": "debug-shell" } } });
    expect(signerIngressProblems(o)).toEqual([
      'a peer selecting none of the services: {"podSelector":{"matchLabels":{"app.kubernetes.io/name":"debug-shell"}}}',
    ]);
    from.push({ namespaceSelector: {} });
    expect(signerIngressProblems(o)).toHaveLength(2);
  });

  it("a client certificate whose CN SIGNER_CLIENTS does not give its role, or a CN of no client", () => {
    const o = prod();
    const cert = find(o, "Certificate", "ln-watchtower-signer-client") as unknown as CertificateObj;
    cert.spec.commonName = "ln-channel";
    expect(signerPermissionProblems(o)).toEqual([
      "ln-watchtower: its certificate's CN ln-channel has the role channel in SIGNER_CLIENTS, not tower",
      "SIGNER_CLIENTS names ln-watchtower, the CN of none of the signer's clients",
    ]);
    cert.spec.commonName = "ln-watchtower";
    const cm = find(o, "ConfigMap", "ln-signer") as unknown as { data: Record<string, string> };
    cm.data["SIGNER_CLIENTS"] = "ln-channel=channel,ln-peer=channel,ln-watchtower=tower";
    expect(signerPermissionProblems(o)).toEqual([
      "ln-peer: its certificate's CN ln-peer has the role channel in SIGNER_CLIENTS, not gateway",
    ]);
  });

  it("the seed key in the environment, or its file readable by others", () => {
    const o = prod();
    const d = deployment(o, "ln-signer");
    const volume = d.spec.template.spec.volumes?.find((v) => v.name === "seed-key") as Volume;
    delete volume.secret?.defaultMode;
    expect(seedKeyProblems(o)).toEqual(["the seed key file has mode 0644"]);
    (d.spec.template.spec.containers[0] as Container).env?.push({
      name: "SIGNER_SEED_KEY",
      valueFrom: { secretKeyRef: { name: "ln-channel-admin-token", key: "token" } },
    });
    expect(seedKeyProblems(o)).toContain("SIGNER_SEED_KEY is set");
  });

  it("the signer's schema back in ln-pg, or ln-signer-pg reachable by the channel service", () => {
    const o = prod();
    const main = find(o, "Cluster", "ln-pg") as unknown as ClusterObj;
    main.spec.bootstrap?.initdb?.postInitApplicationSQL?.push("CREATE SCHEMA signer AUTHORIZATION signer");
    expect(signerDatabaseProblems(o)).toEqual(["ln-pg makes a signer role or schema"]);
    const o2 = prod();
    const ingress = find(o2, "NetworkPolicy", "ln-signer-pg-ingress") as unknown as NetworkPolicyObj;
    ingress.spec.ingress?.[0]?.from?.push({
      podSelector: { matchLabels: { "app.kubernetes.io/name": "ln-channel" } },
    });
    const channel = find(o2, "NetworkPolicy", "ln-channel") as unknown as NetworkPolicyObj;
    channel.spec.egress?.push({
      to: [{ podSelector: { matchLabels: { "cnpg.io/cluster": "ln-signer-pg" } } }],
    });
    expect(signerDatabaseProblems(o2)).toEqual([
      'ln-signer-pg-ingress admits {"podSelector":{"matchLabels":{"app.kubernetes.io/name":"ln-channel"}}} to ln-signer-pg',
      "ln-channel may reach ln-signer-pg",
    ]);
  });

  it("the watchtower without its client certificate, its egress to the signer or SIGNER_ADDR", () => {
    // Its Certificate gone (cert-manager would never make the Secret).
    let o = prod().filter(
      (x) => !(x.kind === "Certificate" && x.metadata.name === "ln-watchtower-signer-client"),
    );
    expect(signerClientProblems(o)).toEqual([
      "ln-watchtower: no Certificate issues the Secret ln-watchtower-signer-client",
    ]);
    // Its volume gone, or borrowing the channel service's certificate.
    o = prod();
    const pod = deployment(o, "ln-watchtower").spec.template.spec;
    const volume = pod.volumes?.find((v) => v.name === "signer-client") as Volume;
    (volume.secret as { secretName: string }).secretName = "ln-channel-signer-client";
    expect(signerClientProblems(o)).toEqual([
      "ln-channel: its client certificate is also mounted by ln-watchtower",
      "ln-watchtower: its client certificate is also mounted by ln-channel",
    ]);
    pod.volumes = (pod.volumes ?? []).filter((v) => v !== volume);
    expect(signerClientProblems(o)).toEqual([
      'ln-watchtower: SIGNER_CLIENT_CA "/etc/ln/signer-client/ca.crt" is not in a Secret volume',
      'ln-watchtower: SIGNER_CLIENT_CERT "/etc/ln/signer-client/tls.crt" is not in a Secret volume',
      'ln-watchtower: SIGNER_CLIENT_KEY "/etc/ln/signer-client/tls.key" is not in a Secret volume',
    ]);
    // Its egress to the signer gone.
    o = prod();
    const tower = find(o, "NetworkPolicy", "ln-watchtower") as unknown as NetworkPolicyObj;
    tower.spec.egress = (tower.spec.egress ?? []).filter((r) => !r.ports?.some((p) => p.port === 50051));
    expect(signerClientProblems(o)).toEqual(["ln-watchtower: no egress to the signer's port 50051"]);
    // SIGNER_ADDR gone: justice off.
    o = prod();
    delete (find(o, "ConfigMap", "ln-watchtower") as unknown as { data: Record<string, string> }).data[
      "SIGNER_ADDR"
    ];
    expect(signerClientProblems(o)).toEqual([
      "ln-watchtower: SIGNER_ADDR undefined is not the Service ln-signer:50051",
    ]);
  });

  it("an ops port admitted to more than Prometheus, Prometheus admitted to the signer's gRPC", () => {
    const o = prod();
    const signer = find(o, "NetworkPolicy", "ln-signer") as unknown as NetworkPolicyObj;
    const opsRule = signer.spec.ingress?.find((r) => r.ports?.[0]?.port === 9090) as NetworkPolicyRule;
    opsRule.from?.push({ podSelector: { matchLabels: { "app.kubernetes.io/name": "ln-channel" } } });
    expect(signerIngressProblems(o)).toEqual([
      `the ops port admits more than Prometheus: ${JSON.stringify(opsRule.from)}`,
    ]);
    expect(metricsIngressProblems(o)).toEqual([
      'ln-signer: ln-signer admits [{"podSelector":{"matchLabels":{"app.kubernetes.io/name":"ln-channel"}}}] to the ops port 9090',
    ]);
    opsRule.ports?.push({ protocol: "TCP", port: 50051 });
    const found = signerIngressProblems(o);
    expect(found.some((p) => p.startsWith("ports "))).toBe(true);
    expect(found.some((p) => p.includes(JSON.stringify(PROMETHEUS_PEER)))).toBe(true);
    expect(metricsIngressProblems(o)).toHaveLength(2);
    const tower = find(o, "NetworkPolicy", "ln-watchtower") as unknown as NetworkPolicyObj;
    tower.spec.ingress = [{ ports: [{ protocol: "TCP", port: 9090 }] }];
    expect(metricsIngressProblems(o).filter((p) => p.startsWith("ln-watchtower"))).toEqual([
      'ln-watchtower: ln-watchtower admits ["everyone"] to the ops port 9090',
      "ln-watchtower: Prometheus cannot reach port 9090",
    ]);
  });

  it("a service without a ServiceMonitor, an ops port on the public Service", () => {
    const o = prod().filter((x) => !(x.kind === "ServiceMonitor" && x.metadata.name === "ln-watchtower"));
    (find(o, "Service", "ln-peer") as unknown as ServiceObj).spec.ports.push({
      name: "ops",
      port: 9090,
      targetPort: "ops",
    });
    expect(monitoringProblems(o)).toEqual([
      "ln-watchtower: no ServiceMonitor scrapes /metrics on port 9090",
      "ln-peer (LoadBalancer) exposes the ops port of ln-peer",
    ]);
  });

  it("render.ts refuses what it does not implement", async () => {
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "kustomize-"));
    writeFileSync(join(dir, "kustomization.yaml"), "resources: []\ncommonLabels: { a: b }\n");
    expect(() => renderKustomization(dir)).toThrow(/commonLabels/);
  });
});

describe("container image", () => {
  it("deploy/Dockerfile: multi-stage, pinned node:20-slim, non-root, one service's packages and entry point", () => {
    const text = readFileSync(join(ROOT, "deploy", "Dockerfile"), "utf8");
    expect(text).toMatch(/^ARG NODE_IMAGE=node:20\.\d+\.\d+-slim$/m);
    expect(text.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(2);
    expect(text).toContain("npm install --global pnpm@10.34.9");
    expect(text).toContain("pnpm install --frozen-lockfile");
    expect(text).toContain("pnpm run build");
    expect(text).toMatch(/^USER node$/m);
    // Every service's package is named as the filter builds it.
    for (const svc of ["signer", "channel", "peer", "watchtower"]) {
      const pkg = (
        JSON.parse(readFileSync(join(ROOT, "services", svc, "package.json"), "utf8")) as { name: string }
      ).name;
      expect(pkg).toBe(`@ln/${svc}-service`);
    }
    expect(text).toContain('--filter "@ln/$SERVICE-service..."');
    expect(text).toContain('ln -s "services/$SERVICE/dist/main.js" /app/main.js');
    expect(text).toContain('CMD ["node", "/app/main.js"]');
  });
});
