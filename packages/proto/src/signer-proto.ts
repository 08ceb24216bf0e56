import { fileURLToPath } from "node:url";

/** Where signer.proto is, for @grpc/proto-loader (src/ and dist/ sit side by side under the package). */
export const SIGNER_PROTO_PATH = fileURLToPath(new URL("../signer.proto", import.meta.url));
