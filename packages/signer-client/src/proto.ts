/** Loads signer.proto (from @ln/proto) at run time (@grpc/proto-loader), 64-bit values as strings. */
import { SIGNER_PROTO_PATH } from "@ln/proto";
import * as protoLoader from "@grpc/proto-loader";
import type { ServiceDefinition } from "@grpc/grpc-js";

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
};

export function loadSignerService(path = SIGNER_PROTO_PATH): ServiceDefinition {
  const pkg = protoLoader.loadSync(path, LOADER_OPTIONS);
  const def = pkg["signer.Signer"];
  if (def === undefined || "format" in def)
    throw new Error(`${path} does not define the service signer.Signer`);
  return def as ServiceDefinition;
}
