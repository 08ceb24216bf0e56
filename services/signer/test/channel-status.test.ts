/**
 * ChannelStatus (read-only): what the signer's records say of a channel, which the channel
 * service compares with its state at start to find a restored (older) state (DESIGN.md 6).
 */
import { describe, expect, it } from "vitest";
import { refusal, useTestSigner } from "./helpers.js";
import { newTestChannel, revealWith, signRemoteWith } from "./received.js";

const t = useTestSigner();

describe("ChannelStatus", () => {
  it("reports nothing for a new channel, then the highest reveal and signatures as they happen", async () => {
    const c = await newTestChannel(t);
    const { ours } = c;
    expect(await t.client.call("ChannelStatus", { channel: ours.channel })).toEqual({
      has_revealed: false,
      highest_revealed: "0",
      has_local_signed: false,
      highest_local_signed: "0",
      has_remote_signed: false,
      highest_remote_signed: "0",
    });

    for (const n of [0n, 1n, 2n]) await signRemoteWith(t, c, n, []);
    // Revokes our commitment 0, shown our commitment 1 signed by the peer.
    await revealWith(t, c, 0n, []);
    expect(await t.client.call("ChannelStatus", { channel: ours.channel })).toEqual({
      has_revealed: true,
      highest_revealed: "0",
      has_local_signed: true,
      highest_local_signed: "1",
      has_remote_signed: true,
      highest_remote_signed: "2",
    });
  });

  it("refuses a channel it never allocated (UNKNOWN_CHANNEL)", async () => {
    expect((await refusal(t.client.call("ChannelStatus", { channel: 999_999 }))).code).toBe(
      "UNKNOWN_CHANNEL",
    );
  });
});

describe("SignerStatuses", () => {
  it("answers each channel's ChannelStatus in one call, in request order; a channel never allocated is unknown", async () => {
    const a = await newTestChannel(t);
    const b = await newTestChannel(t);
    for (const n of [0n, 1n]) await signRemoteWith(t, b, n, []);
    await revealWith(t, b, 0n, []);
    const one = async (channel: number): Promise<unknown> => t.client.call("ChannelStatus", { channel });
    const unknown = {
      has_revealed: false,
      highest_revealed: "0",
      has_local_signed: false,
      highest_local_signed: "0",
      has_remote_signed: false,
      highest_remote_signed: "0",
    };
    const r = await t.client.call("SignerStatuses", {
      channels: [b.ours.channel, 999_999, a.ours.channel, b.ours.channel],
    });
    expect(r.statuses).toEqual([
      { channel: b.ours.channel, known: true, status: await one(b.ours.channel) },
      { channel: 999_999, known: false, status: unknown },
      { channel: a.ours.channel, known: true, status: await one(a.ours.channel) },
      { channel: b.ours.channel, known: true, status: await one(b.ours.channel) },
    ]);
    // b's own records, as ChannelStatus gives them: not the same as a's.
    expect(r.statuses[0]?.status).toMatchObject({ has_revealed: true, highest_revealed: "0" });
    expect(r.statuses[2]?.status).toEqual(unknown);
    expect((await t.client.call("SignerStatuses", { channels: [] })).statuses).toEqual([]);
  });
});
