import { sha256d } from "@ln/bitcoin";
import { decodePkt, encodePkt, WireError, type Pkt, type PktOf } from "@ln/proto";
import * as ecc from "tiny-secp256k1";
import { ConnectionClosed, type NoiseConnection } from "./connection.js";

/**
 * Signs sessionDigest(handshakeHash) with the node key: 64-byte compact, low-S. Injected: the key
 * lives in the signer, which is given the handshake hash and hashes it itself, so the gateway can
 * never have it sign a digest of its choosing (a gossip message's, an invoice's).
 */
export type SignSession = (handshakeHash: Buffer) => Promise<Uint8Array>;

/** SignSession for a node key held in this process (tests, the demo). RFC 6979, low-S. */
export function localSignSession(nodePriv: Uint8Array): SignSession {
  const key = Uint8Array.from(nodePriv);
  return (handshakeHash) => Promise.resolve(ecc.sign(sessionDigest(handshakeHash), key));
}

/** What `session_sig` signs (DESIGN.md 3): SHA256(SHA256(h)), h the handshake hash after act three. */
export const sessionDigest = (handshakeHash: Uint8Array): Buffer => sha256d(handshakeHash);

export type AuthenticateErrorCode =
  | "NOT_AUTHENTICATE" // the first message was another kind
  | "NODE_ID_MISMATCH" // node_id is not the key the handshake authenticated
  | "BAD_SESSION_SIG" // session_sig does not verify (or is high-S)
  | "MALFORMED" // the first message did not decode
  | "PEER_ERROR"; // the peer sent `error` instead

export class AuthenticateError extends Error {
  override readonly name = "AuthenticateError";
  constructor(
    readonly code: AuthenticateErrorCode,
    /** The text for `error.problem`, or the peer's own problem for PEER_ERROR. */
    readonly problem: string,
  ) {
    super(problem);
  }
}

/** Checks a received `authenticate` against the session; returns the peer's `ack`. */
export function verifyAuthenticate(
  auth: PktOf<"authenticate">,
  remoteStatic: Uint8Array,
  handshakeHash: Uint8Array,
): bigint {
  if (!Buffer.from(remoteStatic).equals(auth.nodeId))
    throw new AuthenticateError(
      "NODE_ID_MISMATCH",
      `authenticate: node_id ${auth.nodeId.toString("hex")} is not the key that completed the handshake`,
    );
  let valid = false;
  try {
    // strict: a high-S signature is refused, as low-S is part of the rule.
    valid = ecc.verify(sessionDigest(handshakeHash), auth.nodeId, auth.sessionSig, true);
  } catch {
    valid = false; // r or s out of range
  }
  if (!valid)
    throw new AuthenticateError("BAD_SESSION_SIG", "authenticate: session_sig does not sign this session");
  return auth.ack ?? 0n;
}

export interface Authenticated {
  remoteNodeId: Buffer;
  /** How many of our non-authenticate messages the peer had processed: resend from there. */
  remoteAck: bigint;
}

/**
 * The first message each way over a new connection (DESIGN.md 3): sends ours, reads theirs and
 * checks it. On failure the connection is failed as draft 6.3 says: an `error` naming the problem
 * goes out first, unless the failure was the peer's own `error`.
 */
export async function authenticate(
  conn: NoiseConnection,
  opts: { nodeId: Uint8Array; signSession: SignSession; ack: bigint },
): Promise<Authenticated> {
  const sessionSig = Buffer.from(await opts.signSession(Buffer.from(conn.handshakeHash)));
  await conn.send(
    encodePkt({ kind: "authenticate", nodeId: Buffer.from(opts.nodeId), sessionSig, ack: opts.ack }),
  );
  const first = await conn.receive();
  try {
    let pkt: Pkt;
    try {
      pkt = decodePkt(first);
    } catch (e) {
      if (e instanceof WireError) throw new AuthenticateError("MALFORMED", e.problem);
      throw e;
    }
    if (pkt.kind === "error")
      throw new AuthenticateError(
        "PEER_ERROR",
        `the peer failed the connection: ${pkt.problem ?? "(no problem given)"}`,
      );
    if (pkt.kind !== "authenticate")
      throw new AuthenticateError("NOT_AUTHENTICATE", `expected authenticate first, got ${pkt.kind}`);
    const remoteAck = verifyAuthenticate(pkt, conn.remoteStatic, conn.handshakeHash);
    return { remoteNodeId: pkt.nodeId, remoteAck };
  } catch (e) {
    if (e instanceof AuthenticateError) {
      if (e.code !== "PEER_ERROR")
        await conn.send(encodePkt({ kind: "error", problem: e.problem })).catch(ignoreClosed);
      conn.close();
    }
    throw e;
  }
}

function ignoreClosed(e: unknown): void {
  if (!(e instanceof ConnectionClosed)) throw e;
}
