import { hash160, ripemd160 } from "@ln/bitcoin";
import type { Locktime } from "@ln/bitcoin";
import { opcodes, script } from "bitcoinjs-lib";
import { absoluteExpiry, relativeDelay } from "./timelocks.js";

const {
  OP_0,
  OP_2,
  OP_2DROP,
  OP_ADD,
  OP_CHECKLOCKTIMEVERIFY,
  OP_CHECKMULTISIG,
  OP_CHECKSEQUENCEVERIFY,
  OP_CHECKSIG,
  OP_DROP,
  OP_DUP,
  OP_ELSE,
  OP_ENDIF,
  OP_EQUAL,
  OP_EQUALVERIFY,
  OP_HASH160,
  OP_IF,
  OP_NOTIF,
  OP_SIZE,
  OP_SWAP,
} = opcodes;

type Chunk = number | Uint8Array;

export class ScriptError extends Error {
  override readonly name = "ScriptError";
}

/**
 * A number as a script push: minimal CScriptNum, so 0..16 become OP_0..OP_16 and 200 is
 * `02 c8 00` (a sign byte keeps it positive). bitcoinjs-lib's compile makes the push minimal.
 */
export function scriptNumber(n: number): Uint8Array {
  if (!Number.isSafeInteger(n)) throw new ScriptError(`not an integer: ${n}`);
  return script.number.encode(n);
}

/** The 20-byte hash lock for a 32-byte hash: the script does OP_HASH160 on the 32-byte preimage. */
export function hashLock(sha256Hash: Uint8Array): Buffer {
  if (sha256Hash.length !== 32)
    throw new ScriptError(`a hash lock needs a 32-byte hash, got ${sha256Hash.length}`);
  return ripemd160(sha256Hash);
}

function key(k: Uint8Array, what: string): Uint8Array {
  if (k.length !== 33)
    throw new ScriptError(`${what} must be a 33-byte compressed key, got ${k.length} bytes`);
  return k;
}

const compile = (chunks: Chunk[]): Buffer => Buffer.from(script.compile(chunks));

/** The anchor output: 2-of-2 of the two commit keys, in byte order (DESIGN.md 5). */
export function anchorScript(commitKeyA: Uint8Array, commitKeyB: Uint8Array): Buffer {
  const [k1, k2] = [key(commitKeyA, "commit key"), key(commitKeyB, "commit key")].sort((a, b) =>
    Buffer.compare(a, b),
  ) as [Uint8Array, Uint8Array];
  return compile([OP_2, k1, k2, OP_2, OP_CHECKMULTISIG]);
}

/** Keys and hashes of one commitment, from its owner's side. */
export interface CommitmentScriptKeys {
  /** The owner's revocation hash for this commitment: SHA256 of the preimage it reveals later. */
  revocationHash: Uint8Array;
  /** The delay the other node asked for in its open_channel (DESIGN.md 6). */
  delay: Locktime;
  ownerFinal: Uint8Array;
  otherFinal: Uint8Array;
}

/** To the commitment's owner: the other side with the revocation preimage, or the owner after the delay. */
export function toOwnerScript(k: CommitmentScriptKeys): Buffer {
  return compile([
    OP_HASH160,
    hashLock(k.revocationHash),
    OP_EQUAL,
    OP_IF,
    key(k.otherFinal, "other final key"),
    OP_ELSE,
    scriptNumber(relativeDelay(k.delay)),
    OP_CHECKSEQUENCEVERIFY,
    OP_DROP,
    key(k.ownerFinal, "owner final key"),
    OP_ENDIF,
    OP_CHECKSIG,
  ]);
}

/** To the other side of the commitment: its final key, at once. */
export function toOtherScript(otherFinal: Uint8Array): Buffer {
  return compile([key(otherFinal, "other final key"), OP_CHECKSIG]);
}

export interface HtlcScriptParams extends CommitmentScriptKeys {
  /** SHA256(R). */
  rHash: Uint8Array;
  expiry: Locktime;
}

/**
 * Both HTLC scripts start alike: a 32-byte preimage (OP_SIZE 32, so a short push cannot slip
 * through), its HASH160 kept for the revocation check, compared with R's hash lock.
 */
const rPrefix = (rHash: Uint8Array): Chunk[] => [
  OP_SIZE,
  scriptNumber(32),
  OP_EQUALVERIFY,
  OP_HASH160,
  OP_DUP,
  hashLock(rHash),
  OP_EQUAL,
];

/**
 * An HTLC the owner offered: the other side takes it with R or with the revocation preimage;
 * the owner takes it back after the expiry and its own delay.
 */
export function htlcOfferedScript(p: HtlcScriptParams): Buffer {
  return compile([
    ...rPrefix(p.rHash),
    OP_SWAP,
    hashLock(p.revocationHash),
    OP_EQUAL,
    OP_ADD,
    OP_IF,
    key(p.otherFinal, "other final key"),
    OP_ELSE,
    scriptNumber(absoluteExpiry(p.expiry)),
    OP_CHECKLOCKTIMEVERIFY,
    scriptNumber(relativeDelay(p.delay)),
    OP_CHECKSEQUENCEVERIFY,
    OP_2DROP,
    key(p.ownerFinal, "owner final key"),
    OP_ENDIF,
    OP_CHECKSIG,
  ]);
}

/**
 * An HTLC offered to the owner: the owner takes it with R after its delay; the other side takes
 * it with the revocation preimage at once, or back after the expiry.
 */
export function htlcReceivedScript(p: HtlcScriptParams): Buffer {
  return compile([
    ...rPrefix(p.rHash),
    OP_IF,
    scriptNumber(relativeDelay(p.delay)),
    OP_CHECKSEQUENCEVERIFY,
    OP_2DROP,
    key(p.ownerFinal, "owner final key"),
    OP_ELSE,
    hashLock(p.revocationHash),
    OP_EQUAL,
    OP_NOTIF,
    scriptNumber(absoluteExpiry(p.expiry)),
    OP_CHECKLOCKTIMEVERIFY,
    OP_DROP,
    OP_ENDIF,
    key(p.otherFinal, "other final key"),
    OP_ENDIF,
    OP_CHECKSIG,
  ]);
}

/** The P2SH scriptPubKey paying to a redeem script. */
export function p2shOutput(redeemScript: Uint8Array): Buffer {
  return compile([OP_HASH160, hash160(redeemScript), OP_EQUAL]);
}

/** A P2SH scriptSig: the pushes, then the redeem script. */
export function p2shScriptSig(pushes: readonly Chunk[], redeemScript: Uint8Array): Buffer {
  return compile([...pushes, redeemScript]);
}

/** The empty push that takes a script's "else" branch where a 32-byte value is not required. */
export const EMPTY_PUSH = OP_0 as number;
