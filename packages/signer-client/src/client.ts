/** A typed promise client for the signer (mTLS), for the other services and the tests. */
import * as grpc from "@grpc/grpc-js";
import type { SignerMethod, SignerMethods, SignerRequestOf } from "./messages.js";
import { loadSignerService } from "./proto.js";

/** bigint → decimal string, Uint8Array → Buffer, recursively: what protobufjs's fromObject takes. */
function toWire(v: unknown): unknown {
  if (typeof v === "bigint") return v.toString();
  if (v instanceof Uint8Array) return Buffer.from(v);
  if (Array.isArray(v)) return v.map(toWire);
  if (v !== null && typeof v === "object")
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toWire(x)]));
  return v;
}

export class SignerClient {
  readonly #client: grpc.Client;
  readonly #service = loadSignerService();

  /** `tls`: the CA to trust for the server, and our client certificate (omit to connect without one). */
  constructor(
    address: string,
    tls: { ca: Buffer; cert?: Buffer; key?: Buffer },
    options: grpc.ClientOptions = {},
  ) {
    const creds = grpc.credentials.createSsl(tls.ca, tls.key ?? null, tls.cert ?? null);
    this.#client = new grpc.Client(address, creds, options);
  }

  call<M extends SignerMethod>(
    method: M,
    request: SignerRequestOf<M>,
    timeoutMs = 10_000,
  ): Promise<SignerMethods[M][1]> {
    const def = this.#service[method];
    if (def === undefined) return Promise.reject(new Error(`no method ${method}`));
    return new Promise((resolve, reject) => {
      this.#client.makeUnaryRequest(
        def.path,
        def.requestSerialize,
        (b: Buffer) => def.responseDeserialize(b) as SignerMethods[M][1],
        toWire(request),
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, value) => (err || value === undefined ? reject(err ?? new Error("no reply")) : resolve(value)),
      );
    });
  }

  close(): void {
    this.#client.close();
  }
}
