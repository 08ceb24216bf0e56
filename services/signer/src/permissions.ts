/**
 * Per-client permissions (DESIGN.md 4, like Core Lightning's hsmd capabilities). A client is
 * named by the subject CN of its mTLS certificate; SIGNER_CLIENTS gives each CN one role, and each
 * RPC lists the roles that may call it. A certificate of the CA whose CN is not listed, or a call
 * outside its role, is refused (NOT_PERMITTED) before the request is even decoded.
 */
import { SignerError } from "./errors.js";
import type { SignerMethod } from "./messages.js";

/** The signer's three clients: channel service, peer gateway, watchtower. */
export type ClientRole = "channel" | "gateway" | "tower";

const ROLES: readonly ClientRole[] = ["channel", "gateway", "tower"];

/**
 * Who may call what. Keyed by every RPC, so a new RPC does not compile until it is given its
 * roles. The gateway needs only the transport's handshake (ECDH, the session signature) and the
 * node id; the watchtower only justice; the channel service everything else, with its own ECDH
 * for onions (OnionEcdh): the same computation, kept apart so each role has one of the two.
 */
export const METHOD_ROLES: { readonly [M in SignerMethod]: readonly ClientRole[] } = {
  NodeInfo: ["channel", "gateway"],
  Ecdh: ["gateway"],
  OnionEcdh: ["channel"],
  SignSession: ["gateway"],
  NewChannel: ["channel"],
  RevocationHash: ["channel"],
  RevealRevocation: ["channel"],
  SignRemoteCommitment: ["channel"],
  SignLocalCommitment: ["channel"],
  SignClose: ["channel"],
  RecordPeerRevocation: ["channel"],
  SignJustice: ["tower"],
  WalletKey: ["channel"],
  InvoiceHash: ["channel"],
  RevealInvoice: ["channel"],
  SignInvoice: ["channel"],
  SignSweep: ["channel"],
  SignWalletSpend: ["channel"],
  ChannelStatus: ["channel"],
  SignerStatuses: ["channel"],
  SignChannelAnnouncement: ["channel"],
  SignChannelUpdate: ["channel"],
  SignNodeAnnouncement: ["channel"],
};

/** CN -> role, from SIGNER_CLIENTS. */
export type Clients = ReadonlyMap<string, ClientRole>;

const CN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Parses SIGNER_CLIENTS: `cn=role` pairs separated by commas, e.g.
 * `ln-channel=channel,ln-peer=gateway,ln-watchtower=tower`. Returns the problems found instead of
 * throwing, for the configuration to report them with the others.
 */
export function parseClients(text: string): { clients: Clients; problems: string[] } {
  const clients = new Map<string, ClientRole>();
  const problems: string[] = [];
  for (const pair of text.split(",").map((p) => p.trim())) {
    const [cn = "", role = "", ...rest] = pair.split("=").map((s) => s.trim());
    if (rest.length > 0 || !CN.test(cn)) {
      problems.push(`SIGNER_CLIENTS: ${JSON.stringify(pair)} is not <certificate CN>=<role>`);
      continue;
    }
    if (!(ROLES as readonly string[]).includes(role)) {
      problems.push(
        `SIGNER_CLIENTS: the role of ${cn} must be one of ${ROLES.join(", ")}, got ${JSON.stringify(role)}`,
      );
      continue;
    }
    if (clients.has(cn)) problems.push(`SIGNER_CLIENTS: ${cn} is named twice`);
    clients.set(cn, role as ClientRole);
  }
  return { clients, problems };
}

/** The subject CN of a peer certificate, if it has exactly one. */
export function subjectCn(subject: unknown): string | undefined {
  if (typeof subject !== "object" || subject === null) return undefined;
  const cn = (subject as Record<string, unknown>)["CN"];
  return typeof cn === "string" ? cn : undefined;
}

/** Refuses unless client `cn` (undefined: no CN) may call `method`; returns its role. */
export function authorizeClient(clients: Clients, cn: string | undefined, method: SignerMethod): ClientRole {
  const role = cn === undefined ? undefined : clients.get(cn);
  const who =
    cn === undefined ? "a client certificate without one subject CN" : `client ${JSON.stringify(cn)}`;
  if (role === undefined)
    throw new SignerError("NOT_PERMITTED", `${who} is not in SIGNER_CLIENTS: it may not call ${method}`);
  if (!METHOD_ROLES[method].includes(role))
    throw new SignerError(
      "NOT_PERMITTED",
      `${who} (role ${role}) may not call ${method}; only ${METHOD_ROLES[method].join(", ")} may`,
    );
  return role;
}
