import { once } from "node:events";
import net, { type AddressInfo } from "node:net";
import * as ecc from "tiny-secp256k1";
import {
  initiate,
  localStaticEcdh,
  respond,
  type ConnectionOptions,
  type NoiseConnection,
} from "@ln/transport";

export interface NodeKey {
  priv: Buffer;
  pub: Buffer;
}

export function nodeKey(fill: number): NodeKey {
  const priv = Buffer.alloc(32, fill);
  return { priv, pub: Buffer.from(ecc.pointFromScalar(priv, true) as Uint8Array) };
}

export const opts = (k: NodeKey, extra: Partial<ConnectionOptions> = {}): ConnectionOptions => ({
  localStatic: k.pub,
  staticEcdh: localStaticEcdh(k.priv),
  ...extra,
});

/** A loopback listener whose accepted sockets go through `onSocket`. */
export async function listen(
  onSocket: (s: net.Socket) => void,
): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    onSocket(s);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export async function dial(port: number): Promise<net.Socket> {
  const s = net.connect(port, "127.0.0.1");
  await once(s, "connect");
  return s;
}

/** Two handshaken connections over loopback. */
export async function pair(
  a: NodeKey,
  b: NodeKey,
  extra: Partial<ConnectionOptions> = {},
): Promise<{ initiator: NoiseConnection; responder: NoiseConnection; close: () => Promise<void> }> {
  let accepted!: Promise<NoiseConnection>;
  const server = await listen((s) => (accepted = respond(s, opts(b, extra))));
  const initiator = await initiate(await dial(server.port), { ...opts(a, extra), remoteStatic: b.pub });
  const responder = await accepted;
  return {
    initiator,
    responder,
    close: async () => {
      initiator.close();
      responder.close();
      await server.close();
    },
  };
}
