/**
 * The one send path to the peer gateway (peers/peer-link.ts), over a real NATS: a channel's stored
 * message goes to its peer's `out` subject numbered by the `Ln-Seq` header, an `error` outside any
 * channel goes there unnumbered, and nothing goes out for a channel this replica does not run.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type Msg, type NatsConnection } from "nats";
import { decodePkt } from "@ln/proto";
import { NodeError } from "../src/channels/errors.js";
import { ChannelRegistry } from "../src/channels/registry.js";
import { NatsPeerLink } from "../src/peers/peer-link.js";
import { testNatsUrl } from "@ln/testkit";

let nc: NatsConnection;
const PEER = `03${"ab".repeat(32)}`;

beforeAll(async () => {
  nc = await connect({ servers: testNatsUrl() });
});
afterAll(async () => {
  await nc.drain();
});

/** A link on a fresh prefix, and what reaches PEER's out subject (`<prefix>.<node id>.out`). */
function setup(): { link: NatsPeerLink; registry: ChannelRegistry; seen: Msg[] } {
  const prefix = `t${randomBytes(6).toString("hex")}.peer`;
  const registry = new ChannelRegistry();
  const seen: Msg[] = [];
  nc.subscribe(`${prefix}.${PEER}.out`, { callback: (_e, m) => void seen.push(m) });
  return { link: new NatsPeerLink(nc, prefix, registry), registry, seen };
}

describe("the peer link", () => {
  it("sends a channel's stored message to its peer, numbered by Ln-Seq", async () => {
    const { link, registry, seen } = setup();
    registry.hold("c1", { peer: PEER, signerChannel: 3, awaitingConnection: false });
    const bytes = Buffer.from("0a0b0c", "hex");
    await link.send("c1", { seq: 7, bytes });
    link.sendTo(PEER, { seq: 8, bytes });
    await nc.flush();
    expect(seen.map((m) => [m.headers?.get("Ln-Seq"), Buffer.from(m.data).toString("hex")])).toEqual([
      ["7", "0a0b0c"],
      ["8", "0a0b0c"],
    ]);
  });

  it("sends an error outside any channel unnumbered", async () => {
    const { link, seen } = setup();
    link.sendError(PEER, "open_channel: we have no channel with you");
    await nc.flush();
    expect(seen).toHaveLength(1);
    expect(seen[0]?.headers?.get("Ln-Seq") ?? "").toBe("");
    expect(decodePkt(seen[0]?.data ?? new Uint8Array())).toEqual({
      kind: "error",
      problem: "open_channel: we have no channel with you",
    });
  });

  it("sends gossip unnumbered: neither counted by ack nor retransmitted (DESIGN.md 10)", async () => {
    const { link, seen } = setup();
    link.sendGossip(PEER, Buffer.from("0a0b0c", "hex"));
    await nc.flush();
    expect(seen.map((m) => [m.headers?.get("Ln-Seq") ?? "", Buffer.from(m.data).toString("hex")])).toEqual([
      ["", "0a0b0c"],
    ]);
  });

  it("refuses a channel not run here (NOT_FOUND) and sends nothing", async () => {
    const { link, seen } = setup();
    const e = await Promise.resolve()
      .then(() => link.send("c2", { seq: 1, bytes: Buffer.from("00", "hex") }))
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(e).toBeInstanceOf(NodeError);
    expect((e as NodeError).code).toBe("NOT_FOUND");
    await nc.flush();
    expect(seen).toHaveLength(0);
  });
});
