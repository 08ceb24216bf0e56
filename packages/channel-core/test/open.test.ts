import { describe, expect, it } from "vitest";
import { openPair } from "./harness.js";

describe("opening (draft 2)", () => {
  it("runs open_channel both ways, open_anchor, open_commit_sig, open_complete both ways", () => {
    const p = openPair();
    const kinds = (n: typeof p.a): string[] => n.sent.map((m) => m.kind);
    expect(kinds(p.a)).toEqual(["open_channel", "open_anchor", "open_complete"]);
    expect(kinds(p.b)).toEqual(["open_channel", "open_commit_sig", "open_complete"]);
    expect(p.a.log.some((o) => o.type === "broadcast_anchor")).toBe(true);
    expect(p.b.log.some((o) => o.type === "broadcast_anchor")).toBe(false);
    expect(p.a.state.localCommit?.localMsat).toBe(1_000_000_000n);
    expect(p.b.state.localCommit?.remoteMsat).toBe(1_000_000_000n);
  });
});
