/**
 * The shell's data-loss rules (DESIGN.md 6): which signer refusals mean our state is behind the
 * signer's (the channel stops instead of retrying), as the signer sends them over gRPC: status
 * FAILED_PRECONDITION with "CODE: text" in `details`.
 */
import { describe, expect, it } from "vitest";
import { behindRefusal } from "../src/channels/data-loss.js";

/** An error as grpc-js gives a signer refusal to the caller. */
const refusal = (code: string, text = "channel 3: our commitment 2 is revoked (revealed up to 4)"): Error =>
  Object.assign(new Error(`9 FAILED_PRECONDITION: ${code}: ${text}`), {
    code: 9,
    details: `${code}: ${text}`,
  });

describe("behindRefusal", () => {
  it("our commitment refused for broadcast as revoked, or the commitment we would revoke into: behind", () => {
    expect(behindRefusal(refusal("COMMITMENT_REVOKED"))).toBe(
      "COMMITMENT_REVOKED: channel 3: our commitment 2 is revoked (revealed up to 4)",
    );
    expect(behindRefusal(refusal("NEXT_COMMITMENT_REVOKED"))).toMatch(/^NEXT_COMMITMENT_REVOKED: /);
  });

  it("found among the effects' failures the runner gathers", () => {
    const gathered = new AggregateError(
      [new Error("chain watcher down"), refusal("COMMITMENT_REVOKED")],
      "2 effects",
    );
    expect(behindRefusal(gathered)).toMatch(/^COMMITMENT_REVOKED: /);
  });

  it("other refusals and other errors are not: they are retried as before", () => {
    expect(behindRefusal(refusal("FEE_TOO_HIGH"))).toBeUndefined();
    expect(behindRefusal(refusal("REVOKE_AFTER_BROADCAST"))).toBeUndefined();
    expect(behindRefusal(new Error("COMMITMENT_REVOKED: but not from the signer"))).toBeUndefined();
    expect(behindRefusal(new AggregateError([new Error("x")], "1 effect"))).toBeUndefined();
  });
});
