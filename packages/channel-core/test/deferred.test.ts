import { msat } from "@ln/bitcoin";
import { step, unrevokedCommitments } from "@ln/channel-core";
import { anchorSighash, buildCommitment, verifyDigest } from "@ln/tx";
import { describe, expect, it } from "vitest";
import { openPair, rHash } from "./harness.js";

describe("inputs while a signer request is out", () => {
  it("wait their turn, and a deferred command that fails is rejected without disturbing the rest", () => {
    const p = openPair();
    p.input(p.a, {
      type: "command",
      command: { kind: "add_htlc", amountMsat: msat(5_000_000), rHash: rHash(1), expiry: { blocks: 5000 } },
    });
    // Drive the core by hand, so the signer's answer comes later.
    const asked = step(p.a.state, { type: "command", command: { kind: "commit" } });
    const request = asked.outputs.find((o) => o.type === "signer");
    expect(request?.type === "signer" && request.request.kind).toBe("sign_remote_commitment");
    expect(asked.state.awaiting).toBe("sign_remote_commitment");

    const waiting = step(asked.state, {
      type: "command",
      command: { kind: "fulfill_htlc", id: 42n, r: "00".repeat(32) },
    });
    expect(waiting.outputs).toEqual([]);
    expect(waiting.state.deferred).toHaveLength(1);

    const reply = request?.type === "signer" ? p.a.signer.answer(request.request) : undefined;
    const done = step(waiting.state, { type: "signer", reply: reply as NonNullable<typeof reply> });
    expect(done.outputs.map((o) => (o.type === "send" ? o.pkt.kind : o.type))).toEqual([
      "update_commit",
      "command_rejected",
    ]);
    expect(done.state.deferred).toEqual([]);
    expect(done.state.awaiting).toBeUndefined();
    expect(done.state.phase).toBe("normal");
  });
});

describe("resume: the request a stored state awaits, asked again", () => {
  it("rebuilds sign_remote_commitment and reveal_revocation exactly as first asked", () => {
    const p = openPair();
    p.input(p.a, {
      type: "command",
      command: { kind: "add_htlc", amountMsat: msat(5_000_000), rHash: rHash(2), expiry: { blocks: 5000 } },
    });
    p.settle();
    // A asks to sign B's commitment; the signer call "fails": only the stored state is left.
    const asked = step(p.a.state, { type: "command", command: { kind: "commit" } });
    const first = asked.outputs.find((o) => o.type === "signer");
    const again = step(asked.state, { type: "resume" });
    expect(again.outputs).toEqual([first]);
    expect(again.state.awaiting).toBe("sign_remote_commitment");
    expect(step(p.a.state, { type: "resume" }).outputs).toEqual([]); // nothing pending, nothing asked

    // B receives the commit and asks to reveal its old preimage: resume asks the same again.
    const reply = first?.type === "signer" ? p.a.signer.answer(first.request) : undefined;
    const signed = step(asked.state, { type: "signer", reply: reply as NonNullable<typeof reply> });
    const commit = signed.outputs.find((o) => o.type === "send");
    const atB = step(p.b.state, { type: "pkt", pkt: commit?.type === "send" ? commit.pkt : ({} as never) });
    const reveal = atB.outputs.find((o) => o.type === "signer");
    expect(reveal?.type === "signer" && reveal.request.kind).toBe("reveal_revocation");
    expect(step(atB.state, { type: "resume" }).outputs).toEqual([reveal]);
  });
});

describe("our commitment while the signer reveals the previous preimage", () => {
  it("is the new one, under the revocation hash the peer signed it with", () => {
    const p = openPair();
    p.input(p.a, {
      type: "command",
      command: { kind: "add_htlc", amountMsat: msat(5_000_000), rHash: rHash(3), expiry: { blocks: 5000 } },
    });
    p.settle();
    const asked = step(p.a.state, { type: "command", command: { kind: "commit" } });
    const request = asked.outputs.find((o) => o.type === "signer");
    const reply = request?.type === "signer" ? p.a.signer.answer(request.request) : undefined;
    const signed = step(asked.state, { type: "signer", reply: reply as NonNullable<typeof reply> });
    const commit = signed.outputs.find((o) => o.type === "send");
    // B holds A's signature on its new commitment and waits for its signer to reveal the old
    // preimage: a stored state on-chain resolution may read as it is.
    const atB = step(p.b.state, { type: "pkt", pkt: commit?.type === "send" ? commit.pkt : ({} as never) });
    expect(atB.state.awaiting).toBe("reveal_revocation");
    const ours = unrevokedCommitments(atB.state).ours;
    expect(ours?.number).toBe(atB.state.localCommit?.number);
    // A's signature verifies on the commitment these parameters build: the right hash.
    const c = buildCommitment(ours?.params as NonNullable<typeof ours>["params"]);
    const digest = anchorSighash(c.tx, c.anchorRedeemScript);
    const aCommitKey = Buffer.from(atB.state.remote?.commitKey ?? "", "hex");
    expect(verifyDigest(aCommitKey, digest, Buffer.from(atB.state.localCommit?.theirSig ?? "", "hex"))).toBe(
      true,
    );
  });
});
