import { describe, expect, it } from "vitest";
import type { ChannelDetail, Payment } from "../src/client.js";
import * as F from "../src/format.js";

const chan = {
  id: "c1",
  peerNodeId: `03${"22".repeat(32)}`,
  phase: "normal" as const,
  role: "creator" as const,
  capacitySat: "1000000",
  localBalanceMsat: "999000000",
  remoteBalanceMsat: "1000000",
};

describe("table", () => {
  it("pads columns, right-aligns numbers, trims trailing spaces", () => {
    const t = F.table(
      [{ header: "NAME" }, { header: "N", right: true }, { header: "NOTE" }],
      [
        ["a", "1", ""],
        ["long name", "12345", "x"],
      ],
    );
    expect(t).toBe(["NAME           N  NOTE", "a              1", "long name  12345  x", ""].join("\n"));
  });

  it("escapes control characters so server strings cannot drive the terminal", () => {
    expect(F.clean("a\x1b[31mred\nb\u0085")).toBe("a\\u001b[31mred\\u000ab\\u0085");
    expect(F.table([{ header: "X" }], [["\x07"]])).toBe("X\n\\u0007\n");
    expect(F.keyValues([["k", "v\r"]])).toBe("k:  v\\u000d\n");
  });

  it("groups digits without losing precision", () => {
    expect(F.groupDigits("0")).toBe("0");
    expect(F.groupDigits("999")).toBe("999");
    expect(F.groupDigits("1000")).toBe("1,000");
    expect(F.groupDigits("18446744073709551615")).toBe("18,446,744,073,709,551,615");
    expect(F.groupDigits("n/a")).toBe("n/a");
  });
});

describe("reply formatting", () => {
  it("channels: a table, or a note when there are none", () => {
    expect(F.formatChannels({ channels: [] })).toBe("no channels\n");
    const lines = F.formatChannels({
      channels: [chan, { ...chan, id: "c2-longer", capacitySat: "5", shortChannelId: "539268x845x1" }],
    }).split("\n");
    expect(lines[0]).toMatch(
      /^ID\s+SCID\s+PEER\s+PHASE\s+ROLE\s+CAPACITY \(sat\)\s+LOCAL \(msat\)\s+REMOTE \(msat\)$/,
    );
    expect(lines[1]).toBe(
      `c1         -             ${chan.peerNodeId}  normal  creator       1,000,000   999,000,000      1,000,000`,
    );
    expect(lines[2]).toMatch(/^c2-longer {2}539268x845x1 {2}/);
    expect(lines[2]).toContain("c2-longer");
    expect(lines[2]).toMatch(/ {14}5 {2}/);
    expect(lines).toHaveLength(4);
  });

  it("channel detail: fields, HTLCs, failure, broadcasts", () => {
    const d: ChannelDetail = {
      ...chan,
      htlcs: [
        {
          id: "7",
          direction: "offered",
          amountMsat: "1500",
          rHash: "ab".repeat(32),
          expiry: { blocks: 800 },
        },
      ],
      failure: { code: "PEER_ERROR", problem: "bad sig" },
      anchorTxid: "ef".repeat(32),
      transactions: [{ kind: "commitment", txid: "12".repeat(32) }],
      onchain: null,
    };
    const out = F.formatChannel(d);
    expect(out).toContain("capacity:        1,000,000 sat\n");
    expect(out).toContain("scid:            -\n");
    expect(F.formatChannel({ ...d, shortChannelId: "103x2x1" })).toContain("scid:            103x2x1\n");
    expect(out).toContain(`anchor txid:     ${"ef".repeat(32)}\n`);
    expect(out).toContain("failure:         PEER_ERROR: bad sig\n");
    expect(out).toMatch(
      /HTLCs:\n\s*ID\s+DIRECTION\s+AMOUNT \(msat\)\s+EXPIRY\s+PAYMENT HASH\n\s*7\s+offered\s+1,500\s+height 800\s+(ab){32}\n/,
    );
    expect(out).toMatch(/broadcast:\nKIND\s+TXID\ncommitment\s+(12){32}\n/);
    expect(F.formatChannel({ ...d, htlcs: [], failure: null, anchorTxid: null, transactions: [] })).toMatch(
      /anchor txid:\s+-\n\nno HTLCs\n$/,
    );
  });

  it("channel detail: a channel behind names the data loss and the runbook", () => {
    const d: ChannelDetail = {
      ...chan,
      phase: "behind",
      onchain: null,
      htlcs: [],
      failure: { code: "DATA_LOSS", problem: "the signer revealed our commitment 5" },
      anchorTxid: "ef".repeat(32),
      transactions: [],
    };
    const out = F.formatChannel(d);
    expect(out).toContain("phase:           behind (data loss suspected: see the restore runbook)\n");
    expect(out).toContain("failure:         DATA_LOSS: the signer revealed our commitment 5\n");
  });

  it("payments, payment, info, invoice, wallet", () => {
    const p: Payment = {
      id: "p1",
      channelId: "c1",
      rHash: "ab".repeat(32),
      amountMsat: "1000",
      expiry: { seconds: 1_700_000_000 },
      status: "failed",
      failureReason: "no route",
      route: null,
      failure: null,
      createdAt: "2026-01-01T00:00:00.000Z",
    };
    expect(F.formatPayments({ payments: [] })).toBe("no payments\n");
    expect(F.formatPayments({ payments: [p] })).toMatch(
      /^ID\s+STATUS\s+AMOUNT \(msat\)\s+CHANNEL\s+EXPIRY\s+CREATED\np1\s+failed\s+1,000\s+c1\s+unix 1700000000 \(2023-11-14T22:13:20.000Z\)\s+2026-01-01T00:00:00.000Z\n$/,
    );
    expect(F.formatPayment(p)).toContain("failure:       no route\n");
    expect(F.formatPayment({ ...p, failureReason: null })).not.toContain("failure");
    expect(
      F.formatInfo({
        nodeId: "02aa",
        network: "regtest",
        version: "1",
        blockHeight: 100,
        peerCount: 2,
        channelCount: 3,
      }),
    ).toBe(
      "node id:       02aa\nnetwork:       regtest\nversion:       1\nblock height:  100\npeers:         2\nchannels:      3\n",
    );
    const inv = {
      rHash: "h",
      amountMsat: "5000",
      description: "",
      createdAt: "t",
      status: "open" as const,
      bolt11: "lnbcrt50n1xyz",
      expiresAt: "u",
      payee: "02aa",
    };
    expect(F.formatInvoice(inv)).toContain("amount:        5,000 msat\n");
    expect(F.formatInvoice(inv).startsWith("lnbcrt50n1xyz\n\n")).toBe(true);
    expect(F.formatInvoice({ ...inv, amountMsat: "0", bolt11: null })).toMatch(
      /^payment hash: {2}h\namount: {8}any\n/,
    );
    expect(F.formatAddress({ address: "bcrt1qabc" })).toBe("bcrt1qabc\n");
    expect(F.formatBalance({ confirmedSat: "10000000", unconfirmedSat: "0", closeOutputs: [] })).toBe(
      "confirmed:    10,000,000 sat\nunconfirmed:  0 sat\n",
    );
    const out = { channelId: "c", txid: "t", vout: 1, sweepTxid: null, maturesAtHeight: null };
    expect(
      F.formatBalance({
        confirmedSat: "0",
        unconfirmedSat: "5000",
        closeOutputs: [
          { ...out, amountSat: "5000", status: "unswept" },
          { ...out, amountSat: "7000", status: "waiting", maturesAtHeight: 250 },
          { ...out, amountSat: "9000", status: "sweeping", sweepTxid: "s" },
        ],
      }),
    ).toBe(
      "confirmed:     0 sat\nunconfirmed:   5,000 sat\n" +
        "close output:  5,000 sat (swept at the next block) t:1\n" +
        "close output:  7,000 sat (matures at height 250) t:1\n" +
        "close output:  9,000 sat (sweeping in s) t:1\n",
    );
    expect(F.formatWithdrawal({ txid: "t", address: "a", amountSat: "1" })).toContain("amount:   1 sat\n");
    expect(F.formatPeer({ nodeId: "n", host: "::1", port: 9735, connected: true })).toContain(
      "address:    [::1]:9735\n",
    );
  });
});
