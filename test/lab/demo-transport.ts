/**
 * The main job until the regtest lab exists: two nodes on loopback run the BOLT #8 handshake,
 * exchange `authenticate` (DESIGN.md 3), then one `pkt` each way, and print what happened.
 */
import { once } from "node:events";
import net, { type AddressInfo } from "node:net";
import { decodePkt, encodePkt } from "@ln/proto";
import {
  authenticate,
  initiate,
  localSignSession,
  localStaticEcdh,
  respond,
  type NoiseConnection,
} from "@ln/transport";
import * as ecc from "tiny-secp256k1";
import { randomBytes } from "node:crypto";

function node(name: string): { name: string; priv: Buffer; pub: Buffer } {
  let priv: Buffer;
  do priv = randomBytes(32);
  while (!ecc.isPrivate(priv));
  return { name, priv, pub: Buffer.from(ecc.pointFromScalar(priv, true) as Uint8Array) };
}

const log = (who: string, what: string): void => console.log(`[${who.padEnd(5)}] ${what}`);
const short = (key: Buffer): string => `${key.toString("hex").slice(0, 16)}…`;

const alice = node("alice");
const bob = node("bob");
log("demo", `alice node id ${short(alice.pub)}, bob node id ${short(bob.pub)}`);

async function session(me: typeof alice, conn: NoiseConnection): Promise<void> {
  log(me.name, `handshake done with ${short(conn.remoteStatic)}; h = ${short(conn.handshakeHash)}`);
  const { remoteNodeId, remoteAck } = await authenticate(conn, {
    nodeId: me.pub,
    signSession: localSignSession(me.priv),
    ack: 0n,
  });
  log(me.name, `authenticate checked: peer ${short(remoteNodeId)} signed this session, ack ${remoteAck}`);
  await conn.send(encodePkt({ kind: "update_fee", feeRate: me === alice ? 1112 : 2224 }));
  const pkt = decodePkt(await conn.receive());
  log(me.name, `received ${JSON.stringify(pkt)}`);
}

const server = net.createServer();
server.listen(0, "127.0.0.1");
await once(server, "listening");
const { port } = server.address() as AddressInfo;
log("bob", `listening on 127.0.0.1:${port}`);

const bobDone = new Promise<void>((resolve, reject) => {
  server.once("connection", (socket: net.Socket) => {
    respond(socket, { localStatic: bob.pub, staticEcdh: localStaticEcdh(bob.priv) })
      .then(async (conn) => {
        await session(bob, conn);
        conn.close();
        resolve();
      })
      .catch(reject);
  });
});

const socket = net.connect(port, "127.0.0.1");
await once(socket, "connect");
log("alice", `connected to bob at 127.0.0.1:${port}, starting the handshake`);
const conn = await initiate(socket, {
  localStatic: alice.pub,
  staticEcdh: localStaticEcdh(alice.priv),
  remoteStatic: bob.pub,
});
await Promise.all([session(alice, conn), bobDone]);
log("demo", `connection closed: ${(await conn.closed).code}`);
server.close();
log("demo", "ok: handshake, authenticate both ways, one pkt each way");
