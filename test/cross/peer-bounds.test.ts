/**
 * What a peer can make a node allocate (issue 13, "a peer that costs us without bound"), on the
 * in-process two-node harness (real signers, Postgres, NATS, gateways, regtest): open_channel is
 * checked before anything is allocated, inbound openings are capped, failed ones forgotten, and
 * a channel message from a peer we have no channel with fails the connection.
 */
import { randomBytes } from "node:crypto";
import { msat, sha256 } from "@ln/bitcoin";
import { decodePkt, encodePeerEvent, encodePkt, peerSubjects, type Pkt, type PktOf } from "@ln/proto";
import type { NatsConnection } from "nats";
import type pg from "pg";
import * as ecc from "tiny-secp256k1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, type Harness } from "./harness.js";

let h: Harness | undefined;
let nodes: Harness["nodes"];
let nc: NatsConnection;
let pool: pg.Pool;
let until: Harness["until"];

const BACKLOG = 20;
const LIMITS = { maxOpening: 2, perPeerFailures: 2, totalFailures: 100, windowMs: 3_600_000 };

beforeAll(async () => {
  h = await startHarness({ inboundOpenings: LIMITS, maxPeerBacklog: BACKLOG });
  ({ nodes, nc, pool, until } = h);
}, 60_000);
afterAll(async () => {
  await h?.close();
});

/** A node key of a peer driven by hand: its pkts go straight onto B's inbound subject. */
function fakePeer(): { hex: string; send: (p: Pkt) => void; connected: () => void; received: Pkt[] } {
  let key: Buffer;
  do key = randomBytes(32);
  while (!ecc.isPrivate(key));
  const hex = Buffer.from(ecc.pointFromScalar(key, true) as Uint8Array).toString("hex");
  const subjects = peerSubjects(nodes.B.peerPrefix, hex);
  const received: Pkt[] = [];
  nc.subscribe(subjects.out, { callback: (e, m) => !e && received.push(decodePkt(m.data)) });
  return {
    hex,
    send: (p) => nc.publish(subjects.in, encodePkt(p)),
    connected: () => nc.publish(subjects.events, encodePeerEvent({ type: "connected", theirAck: "0" })),
    received,
  };
}

const point = (fill: number): Buffer =>
  Buffer.from(ecc.pointFromScalar(Buffer.alloc(32, fill), true) as Uint8Array);
const open = (change: Partial<PktOf<"open_channel">> = {}): Pkt => ({
  kind: "open_channel",
  delay: { blocks: 144 },
  revocationHash: sha256(Buffer.alloc(32, 1)),
  nextRevocationHash: sha256(Buffer.alloc(32, 2)),
  commitKey: point(3),
  finalKey: point(4),
  anch: "WILL_CREATE_ANCHOR",
  minDepth: 1,
  initialFeeRate: 10_000,
  ...change,
});

const rowsWith = async (peer: string): Promise<number> =>
  (await nodes.B.store.rows()).filter((r) => r.peerNodeId === peer).length;
const signerChannels = async (): Promise<number> =>
  Number(
    (
      await pool.query<{ n: string }>(
        `SELECT count(*) AS n FROM "${nodes.B.schema.replace(/_b$/, "_signer_b")}".channels`,
      )
    ).rows[0]?.n,
  );
const errors = (p: { received: Pkt[] }): Pkt[] => p.received.filter((x) => x.kind === "error");

describe("a peer that costs us without bound", () => {
  it("answers a channel message from a peer with no channel with error, and the gateway drops the connection", async () => {
    // Over the real gateways: A is connected to B, with no channel between them.
    const port = await nodes.B.gateway.listen(0, "127.0.0.1");
    await nodes.A.gateway.connect("127.0.0.1", port, nodes.B.nodeId);
    const bHex = nodes.B.nodeId.toString("hex");
    const aHex = nodes.A.nodeId.toString("hex");
    await until("connected", async () => nodes.B.gateway.peers.includes(aHex));
    // "A" (its channel service, forged on A's outbound subject) sends a valid update_fee.
    nc.publish(
      peerSubjects(nodes.A.peerPrefix, bHex).out,
      encodePkt({ kind: "update_fee", feeRate: 12_000 }),
    );
    await until("B dropped the connection", async () => !nodes.B.gateway.peers.includes(aHex));
    expect(await nodes.B.store.liveWith(aHex)).toBeUndefined();

    // Each kind of channel message gets its error; an error gets none back (draft 6.3).
    const f = fakePeer();
    await nc.flush();
    f.send({ kind: "update_commit", sig: Buffer.alloc(64, 1), ack: 0n });
    f.send({
      kind: "update_add_htlc",
      id: 0n,
      amountMsat: msat(1000n),
      rHash: Buffer.alloc(32, 9),
      expiry: { blocks: 500 },
      route: Buffer.alloc(0),
    });
    f.send({ kind: "error", problem: "bye" });
    f.send({ kind: "close_clearing" });
    await until(
      "errors for update_commit, update_add_htlc and close_clearing",
      async () => errors(f).length === 3,
    );
    await nc.flush();
    expect(errors(f)).toHaveLength(3);
    expect(await rowsWith(f.hex)).toBe(0);
  }, 60_000);

  it("checks open_channel before allocating anything: a bad one gets error, and no channel, key or row", async () => {
    const f = fakePeer();
    await nc.flush();
    const [rows, keys] = [(await nodes.B.store.rows()).length, await signerChannels()];
    f.send(open({ minDepth: 101 })); // above maxMinDepth
    f.send(open({ anch: "WONT_CREATE_ANCHOR" })); // the creator of the connection must create it
    f.send(open({ initialFeeRate: 999 }));
    await until("three errors", async () => errors(f).length === 3);
    expect((await nodes.B.store.rows()).length).toBe(rows);
    expect(await signerChannels()).toBe(keys);
  }, 60_000);

  it("caps inbound channels still opening, forgets an opening that failed before its anchor, and refuses a peer whose openings keep failing", async () => {
    const [f1, f2, f3] = [fakePeer(), fakePeer(), fakePeer()];
    await nc.flush();
    f1.send(open());
    f2.send(open());
    await until(
      "two inbound openings",
      async () => (await rowsWith(f1.hex)) + (await rowsWith(f2.hex)) === 2,
    );
    await until("B's open_channel to f1", async () => f1.received.length === 1);
    expect(f1.received.map((p) => p.kind)).toEqual(["open_channel"]);
    // The third peer finds every opening slot taken (maxOpening 2): error, nothing allocated.
    const keys = await signerChannels();
    f3.send(open());
    await until("f3 refused", async () => errors(f3).length === 1);
    expect(await rowsWith(f3.hex)).toBe(0);
    expect(await signerChannels()).toBe(keys);
    expect(h?.logs.filter((l) => l.includes("(TOO_MANY_OPENING)"))).toHaveLength(1);

    // f1 gives up (error): its channel failed before any anchor, so it is deleted, outbox and all,
    // and no longer run (nor stepped at each block).
    const id1 = (await nodes.B.store.liveWith(f1.hex))?.id as string;
    f1.send({ kind: "error", problem: "changed my mind" });
    await until(
      "f1's opening forgotten",
      async () => (await nodes.B.store.row(id1)) === undefined && !nodes.B.node.holds(id1),
    );
    const outbox = await pool.query(`SELECT 1 FROM "${nodes.B.schema}".outbox WHERE channel_id = $1`, [id1]);
    expect(outbox.rowCount).toBe(0);

    // f3 now gets a slot.
    f3.send(open());
    await until("f3 opening", async () => (await rowsWith(f3.hex)) === 1);
    f3.send({ kind: "error", problem: "no" });
    await until("f3's opening forgotten", async () => (await rowsWith(f3.hex)) === 0);

    // f1 opens again, fails it with a message out of order (its second failed opening in the
    // window), and is refused a third (perPeerFailures 2); f2's slot was never touched.
    f1.send(open());
    await until("f1's second opening", async () => (await rowsWith(f1.hex)) === 1);
    const id2 = (await nodes.B.store.liveWith(f1.hex))?.id as string;
    f1.send({ kind: "update_fee", feeRate: 12_000 });
    await until("the second forgotten", async () => (await nodes.B.store.row(id2)) === undefined);
    await until("its error", async () => errors(f1).length === 1); // none for f1's own error
    f1.send(open());
    await until("f1 refused", async () => errors(f1).length === 2);
    expect(await rowsWith(f1.hex)).toBe(0);
    expect(h?.logs.filter((l) => l.includes("(PEER_FAILURES)"))).toHaveLength(1);
    expect(await rowsWith(f2.hex)).toBe(1);
  }, 60_000);

  it("drops a peer's messages beyond its backlog, with its connection, and takes them again after the reconnect", async () => {
    const f = fakePeer();
    await nc.flush();
    const fee = (i: number): Pkt => ({ kind: "update_fee", feeRate: 10_000 + i });
    // B's node is held on the peer's first message (its channels table locked)...
    const locker = await pool.connect();
    await locker.query("BEGIN");
    await locker.query(`LOCK TABLE "${nodes.B.schema}".channels IN ACCESS EXCLUSIVE MODE`);
    // Its lookup of the peer's channel (store.liveWith) waits for the lock: the message is taken.
    const waiting = async (): Promise<boolean> =>
      ((
        await pool.query(
          `SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%WHERE peer_node_id = $1 AND phase NOT IN%'`,
        )
      ).rowCount ?? 0) > 0;
    f.send(fee(0));
    await until("B's node waits on the lock", waiting);
    // ... so the next BACKLOG wait in its queue, and the rest are dropped with the connection.
    for (let i = 1; i <= BACKLOG + 10; i++) f.send(fee(i));
    const dropped = `peer ${f.hex.slice(0, 16)}…: ${BACKLOG} messages waiting; dropping the connection`;
    await until("the backlog full", async () => Boolean(h?.logs.some((l) => l.includes(dropped))));
    await locker.query("ROLLBACK");
    locker.release();
    // Each message taken is answered (no channel: error); none of the dropped ones.
    await until("the taken ones answered", async () => errors(f).length === BACKLOG + 1);
    f.send(fee(100)); // still the old connection: dropped, or it would come before those it follows
    f.connected(); // the peer reconnected: it resends from our ack, and we take its messages again
    f.send(fee(101));
    await until("after the reconnect", async () => errors(f).length === BACKLOG + 2);
    f.send(fee(102));
    await until("one more", async () => errors(f).length === BACKLOG + 3);
    expect(errors(f)).toHaveLength(BACKLOG + 3);
    expect(h?.logs.filter((l) => l.includes(dropped))).toHaveLength(1);
  }, 60_000);
});
