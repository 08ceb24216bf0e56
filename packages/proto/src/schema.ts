import { readFileSync } from "node:fs";
import protobuf from "protobufjs";

/**
 * The schema of lightning.proto, compiled by protobufjs (`pbjs -t json`) and flattened into the
 * little table the codec walks. protobufjs's own decoder skips unknown fields silently, so the
 * unknown-field rule (DESIGN.md 2) needs a walker of our own over this reflection.
 */
export type FieldKind = "uint64" | "uint32" | "fixed64" | "bool" | "enum" | "bytes" | "string" | "message";

export interface FieldSpec {
  readonly name: string;
  readonly id: number;
  readonly kind: FieldKind;
  readonly required: boolean;
  /** Repeated (only length-delimited kinds: proto2 never packs them). Decoded as an array. */
  readonly repeated: boolean;
  readonly oneof: string | undefined;
  readonly message: MessageSpec | undefined;
  readonly enumValues: ReadonlySet<number> | undefined;
}

export interface MessageSpec {
  readonly name: string;
  /** In field-number order, the order in which we encode. */
  readonly fields: readonly FieldSpec[];
  readonly byId: ReadonlyMap<number, FieldSpec>;
  readonly byName: ReadonlyMap<string, FieldSpec>;
  readonly oneofs: readonly { readonly name: string; readonly members: readonly string[] }[];
}

const SCALARS: Readonly<Record<string, FieldKind>> = {
  uint64: "uint64",
  uint32: "uint32",
  fixed64: "fixed64",
  bool: "bool",
  bytes: "bytes",
  string: "string",
};

function flatten(type: protobuf.Type, done: Map<string, MessageSpec>): MessageSpec {
  const known = done.get(type.fullName);
  if (known) return known;
  const fields: FieldSpec[] = [];
  const byId = new Map<number, FieldSpec>();
  const byName = new Map<string, FieldSpec>();
  const spec: MessageSpec = {
    name: type.name,
    fields,
    byId,
    byName,
    oneofs: type.oneofsArray.map((o) => ({ name: o.name, members: o.oneof })),
  };
  done.set(type.fullName, spec);
  for (const f of [...type.fieldsArray].sort((x, y) => x.id - y.id)) {
    const resolved = f.resolvedType;
    let kind = SCALARS[f.type];
    let message: MessageSpec | undefined;
    let enumValues: Set<number> | undefined;
    if (resolved instanceof protobuf.Type) {
      kind = "message";
      message = flatten(resolved, done);
    } else if (resolved instanceof protobuf.Enum) {
      kind = "enum";
      enumValues = new Set(Object.values(resolved.values));
    }
    const lengthDelimited = kind === "string" || kind === "bytes" || kind === "message";
    if (kind === undefined || (f.repeated && !lengthDelimited) || f.map)
      throw new Error(`lightning.proto: unsupported field ${f.fullName}`);
    const field: FieldSpec = {
      name: f.name,
      id: f.id,
      kind,
      required: f.required,
      repeated: f.repeated,
      oneof: f.partOf?.name,
      message,
      enumValues,
    };
    fields.push(field);
    byId.set(f.id, field);
    byName.set(f.name, field);
  }
  return spec;
}

const root = protobuf.Root.fromJSON(
  JSON.parse(readFileSync(new URL("../gen/lightning.json", import.meta.url), "utf8")) as protobuf.INamespace,
);
root.resolveAll();

const specs = new Map<string, MessageSpec>();
/** The `pkt` envelope and, through it, every message of the protocol. */
export const PKT_SPEC = flatten(root.lookupType("lightning.pkt"), specs);
/** The protobufjs reflection, for tools that want it (e.g. to print a message). */
export const lightningRoot: protobuf.Root = root;
