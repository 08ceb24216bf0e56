/**
 * An in-process stand-in for the signer service, for tests of the core and of the channel
 * service's shell: the same answers, from keys held here. Never used outside tests.
 */
import { sha256 } from "@ln/bitcoin";
import { commitmentIndex, generateFromSeed } from "@ln/shachain";
import { anchorSighash, buildClose, buildCommitment, signDigest, verifyDigest } from "@ln/tx";
import * as ecc from "tiny-secp256k1";
import type { OpenTerms, SignerReply, SignerRequest } from "./types.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const pub = (priv: Buffer): string => hex(ecc.pointFromScalar(priv, true) as Uint8Array);

export class TestSigner {
  readonly commitPriv: Buffer;
  readonly finalPriv: Buffer;
  readonly seed: Buffer;
  revealed: bigint[] = [];
  constructor(fill: number) {
    this.commitPriv = Buffer.alloc(32, fill);
    this.finalPriv = Buffer.alloc(32, fill + 1);
    this.seed = Buffer.alloc(32, fill + 2);
  }
  get commitKey(): string {
    return pub(this.commitPriv);
  }
  get finalKey(): string {
    return pub(this.finalPriv);
  }
  preimage(n: bigint): Buffer {
    return generateFromSeed(this.seed, commitmentIndex(n));
  }
  revocationHash(n: bigint): string {
    return hex(sha256(this.preimage(n)));
  }
  /** Our side of open_channel with these keys: the terms tests open channels with. */
  openTerms(): OpenTerms {
    return {
      delay: { blocks: 144 },
      minDepth: 1,
      initialFeeRate: 10_000,
      commitKey: this.commitKey,
      finalKey: this.finalKey,
      revocationHash: this.revocationHash(0n),
      nextRevocationHash: this.revocationHash(1n),
    };
  }
  answer(r: SignerRequest): SignerReply {
    switch (r.kind) {
      case "sign_remote_commitment": {
        const c = buildCommitment(r.params);
        return {
          kind: r.kind,
          sig: hex(signDigest(this.commitPriv, anchorSighash(c.tx, c.anchorRedeemScript))),
        };
      }
      case "reveal_revocation": {
        // The signer's policy (DESIGN.md 4): the peer's valid signature on the next commitment first.
        const c = buildCommitment(r.signedCommitment.params);
        const theirKey = r.signedCommitment.params.anchor.commitKeys.find((k) => hex(k) !== this.commitKey);
        if (
          !theirKey ||
          !verifyDigest(
            theirKey,
            anchorSighash(c.tx, c.anchorRedeemScript),
            Buffer.from(r.signedCommitment.theirSig, "hex"),
          )
        )
          throw new Error("signer policy: no valid signature on the next commitment");
        this.revealed.push(r.revoke);
        return {
          kind: r.kind,
          preimage: hex(this.preimage(r.revoke)),
          nextHash: this.revocationHash(r.next),
        };
      }
      case "sign_close": {
        const c = buildClose(r.params);
        return {
          kind: r.kind,
          sig: hex(signDigest(this.commitPriv, anchorSighash(c.tx, c.anchorRedeemScript))),
        };
      }
    }
  }
}
