/**
 * A minimal Kustomize renderer for deploy/: the fallback when `kubectl` is not installed. It
 * supports exactly the features the kustomizations under deploy/ use and throws on anything
 * else, so a new feature cannot be silently mis-rendered:
 *
 * - `resources`: YAML files (multi-document) and directories holding a kustomization.yaml;
 * - `namespace`: set on every object except the built-in cluster-scoped kinds (as Kustomize,
 *   which treats kinds it does not know, e.g. custom resources, as namespaced);
 * - `images`: `name` with `newName` / `newTag` / `digest`, on pod template containers;
 * - `replicas`: `name` and `count` on Deployments and StatefulSets;
 * - `patches`: inline JSON6902 patches (`add`, `replace`, `remove`) with a `kind` + `name` target.
 *
 * Transformations apply in Kustomize's order: the resources (each sub-kustomization fully
 * built), then patches, namespace, images, replicas. manifests.test.ts checks that the output
 * equals `kubectl kustomize` whenever kubectl is present.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parse, parseAllDocuments } from "yaml";

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: unknown;
}

export class RenderError extends Error {
  override readonly name = "RenderError";
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const SUPPORTED_KEYS = new Set([
  "apiVersion",
  "kind",
  "resources",
  "namespace",
  "images",
  "replicas",
  "patches",
]);

/** Built-in cluster-scoped kinds that Kustomize never gives a namespace. */
const CLUSTER_SCOPED = new Set([
  "Namespace",
  "ClusterRole",
  "ClusterRoleBinding",
  "CustomResourceDefinition",
  "PersistentVolume",
  "StorageClass",
  "PriorityClass",
  "IngressClass",
  "RuntimeClass",
  "APIService",
  "ValidatingWebhookConfiguration",
  "MutatingWebhookConfiguration",
]);

/** Kinds whose namespace Kustomize also rewrites elsewhere in the object: not supported here. */
const UNSUPPORTED_KINDS = new Set(["RoleBinding", "ClusterRoleBinding", "ServiceAccount"]);

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

function kustomizationFile(dir: string): string {
  for (const name of ["kustomization.yaml", "kustomization.yml", "Kustomization"]) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  throw new RenderError(`${dir}: no kustomization.yaml`);
}

function loadYamlObjects(file: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length > 0) throw new RenderError(`${file}: ${doc.errors[0]?.message}`);
    const v: unknown = doc.toJS();
    if (v === null || v === undefined) continue;
    if (!isRecord(v) || typeof v["kind"] !== "string" || !isRecord(v["metadata"]))
      throw new RenderError(`${file}: a document is not a Kubernetes object`);
    out.push(v as K8sObject);
  }
  return out;
}

/** Renders the kustomization in `dir`: the objects `kubectl kustomize dir` prints (in any order). */
export function renderKustomization(dir: string): K8sObject[] {
  const file = kustomizationFile(dir);
  const k: unknown = parse(readFileSync(file, "utf8"));
  if (!isRecord(k)) throw new RenderError(`${file}: not a mapping`);
  for (const key of Object.keys(k))
    if (!SUPPORTED_KEYS.has(key)) throw new RenderError(`${file}: "${key}" is not supported by render.ts`);

  let objects: K8sObject[] = [];
  for (const r of (k["resources"] as unknown[] | undefined) ?? []) {
    if (typeof r !== "string" || /^[a-z]+:\/\//.test(r))
      throw new RenderError(`${file}: resource ${JSON.stringify(r)} is not a local path`);
    const p = join(dir, r);
    objects.push(...(statSync(p).isDirectory() ? renderKustomization(p) : loadYamlObjects(p)));
  }
  for (const o of objects)
    if (UNSUPPORTED_KINDS.has(o.kind)) throw new RenderError(`${file}: kind ${o.kind} is not supported`);

  for (const p of (k["patches"] as unknown[] | undefined) ?? []) objects = applyPatch(file, objects, p);

  const ns = k["namespace"];
  if (ns !== undefined) {
    if (typeof ns !== "string") throw new RenderError(`${file}: namespace must be a string`);
    for (const o of objects) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = ns;
  }

  for (const img of (k["images"] as unknown[] | undefined) ?? []) setImage(file, objects, img);

  for (const r of (k["replicas"] as unknown[] | undefined) ?? []) {
    if (!isRecord(r) || typeof r["name"] !== "string" || typeof r["count"] !== "number")
      throw new RenderError(`${file}: replicas entries need name and count`);
    for (const o of objects)
      if ((o.kind === "Deployment" || o.kind === "StatefulSet") && o.metadata.name === r["name"]) {
        const spec = isRecord(o["spec"]) ? o["spec"] : (o["spec"] = {});
        spec["replicas"] = r["count"];
      }
  }
  return objects;
}

function splitImage(image: string): { name: string; tag: string } {
  const at = image.indexOf("@");
  if (at >= 0) return { name: image.slice(0, at), tag: image.slice(at) };
  const colon = image.lastIndexOf(":");
  if (colon > image.lastIndexOf("/")) return { name: image.slice(0, colon), tag: image.slice(colon) };
  return { name: image, tag: "" };
}

function setImage(file: string, objects: K8sObject[], entry: unknown): void {
  if (!isRecord(entry) || typeof entry["name"] !== "string")
    throw new RenderError(`${file}: images entries need a name`);
  for (const key of Object.keys(entry))
    if (!["name", "newName", "newTag", "digest"].includes(key))
      throw new RenderError(`${file}: images.${key} is not supported`);
  for (const o of objects) {
    const spec = o["spec"];
    const podSpec = isRecord(spec) && isRecord(spec["template"]) ? spec["template"]["spec"] : undefined;
    if (!isRecord(podSpec)) continue;
    for (const list of [podSpec["containers"], podSpec["initContainers"]]) {
      if (!Array.isArray(list)) continue;
      for (const c of list as Record<string, unknown>[]) {
        if (typeof c["image"] !== "string") continue;
        const { name, tag } = splitImage(c["image"]);
        if (name !== entry["name"]) continue;
        const newName = typeof entry["newName"] === "string" ? entry["newName"] : name;
        let newTag = tag;
        if (typeof entry["newTag"] === "string") newTag = `:${entry["newTag"]}`;
        if (typeof entry["digest"] === "string") newTag = `@${entry["digest"]}`;
        c["image"] = newName + newTag;
      }
    }
  }
}

function applyPatch(file: string, objects: K8sObject[], p: unknown): K8sObject[] {
  if (!isRecord(p) || typeof p["patch"] !== "string" || !isRecord(p["target"]))
    throw new RenderError(`${file}: only inline patches with a target are supported`);
  for (const key of Object.keys(p))
    if (key !== "patch" && key !== "target")
      throw new RenderError(`${file}: patches.${key} is not supported`);
  const target = p["target"];
  for (const key of Object.keys(target))
    if (key !== "kind" && key !== "name") throw new RenderError(`${file}: target.${key} is not supported`);
  const ops: unknown = parse(p["patch"]);
  if (!Array.isArray(ops))
    throw new RenderError(`${file}: only JSON6902 (a list of operations) is supported`);
  const matched = objects.filter((o) => o.kind === target["kind"] && o.metadata.name === target["name"]);
  if (matched.length === 0)
    throw new RenderError(`${file}: no ${String(target["kind"])} named ${String(target["name"])} to patch`);
  for (const o of matched) for (const op of ops) applyOp(file, o as unknown as Json, op);
  return objects;
}

function pointer(path: string): string[] {
  if (!path.startsWith("/")) throw new RenderError(`bad JSON pointer ${path}`);
  return path
    .slice(1)
    .split("/")
    .map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function applyOp(file: string, doc: Json, op: unknown): void {
  if (!isRecord(op) || typeof op["op"] !== "string" || typeof op["path"] !== "string")
    throw new RenderError(`${file}: a patch operation needs op and path`);
  const tokens = pointer(op["path"]);
  const last = tokens.pop() as string;
  let parent: Json = doc;
  for (const t of tokens) {
    const next: Json | undefined = Array.isArray(parent)
      ? parent[Number(t)]
      : isRecord(parent)
        ? (parent as Record<string, Json>)[t]
        : undefined;
    if (next === undefined) throw new RenderError(`${file}: ${op["path"]}: ${t} does not exist`);
    parent = next;
  }
  const value = structuredClone(op["value"]) as Json;
  const fail = (): never => {
    throw new RenderError(`${file}: ${String(op["op"])} ${op["path"]}: no such location`);
  };
  if (Array.isArray(parent)) {
    const i = last === "-" ? parent.length : Number(last);
    if (!Number.isInteger(i) || i < 0) fail();
    if (op["op"] === "add") {
      if (i > parent.length) fail();
      parent.splice(i, 0, value);
    } else if (op["op"] === "replace" || op["op"] === "remove") {
      if (i >= parent.length) fail();
      if (op["op"] === "replace") parent[i] = value;
      else parent.splice(i, 1);
    } else throw new RenderError(`${file}: patch op ${op["op"]} is not supported`);
  } else if (isRecord(parent)) {
    const obj = parent as Record<string, Json>;
    if (op["op"] === "add") obj[last] = value;
    else if (op["op"] === "replace" || op["op"] === "remove") {
      if (!(last in obj)) fail();
      if (op["op"] === "replace") obj[last] = value;
      else delete obj[last];
    } else throw new RenderError(`${file}: patch op ${op["op"]} is not supported`);
  } else fail();
}
