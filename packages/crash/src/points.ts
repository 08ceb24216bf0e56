/*~ The one list of crash points: each durable step of the four services where a process may die,
 * named `<service>.<step>`, with why a crash there matters (what recovery must do). The
 * cross-service test test/cross/crash-points.test.ts crashes the services at every one of them. */

export const CRASH_POINTS = {
  // ---- the channel service (services/channel)
  "channel.transition.committed":
    "a channel step is durable (state, outbox, the peer's revocations, tower records), none of its messages sent: retransmission delivers them",
  "channel.transition.sent":
    "the step's messages are handed to the gateway, its signer requests and effects not carried out: resume asks the signer again",
  "channel.signer.answered":
    "the signer answered (a signature, our revocation preimage) and recorded it, the step taking the answer not committed: resume asks again and gets the same answer",
  "channel.peer.received":
    "a peer's message is taken from NATS, not yet run: lost with us, the peer's retransmission on the next connection brings it again",
  "channel.payee.revealed":
    "R of our invoice is out of the signer, the fulfill not committed: the next resume settles the HTLC again (the signer gives the same R)",
  "channel.revocation.recorded":
    "the signer recorded the peer's revocation, our mark of it not written: the next round gives it again (idempotent)",
  "channel.tower_record.published":
    "JetStream acknowledged a revocation record, not marked published: the re-publish is dropped as a duplicate by its message id",
  "channel.invoice.created":
    "an invoice is stored and its amount registered with the signer, the HTTP reply not sent: the caller makes a new one",
  "channel.payment.created":
    "a payment and its HTLC are committed, the HTTP reply not sent: the payer finds it in GET /v1/payments",
  "channel.forward.incoming_committed":
    "an HTLC to forward is committed on both sides, not yet decided: the next round peels it again and writes its row once",
  "channel.forward.row_written":
    "the forward's row is committed, its outgoing HTLC not offered: the holder of the outgoing channel offers it at its next round",
  "channel.forward.outgoing_added":
    "the outgoing HTLC and the row's claim are committed, not yet sent: retransmission delivers the add; the row is never offered twice",
  "channel.forward.r_downstream":
    "R from downstream is committed with the forward's row, upstream not told: the next round fulfils upstream",
  "channel.forward.before_upstream_fulfil":
    "the incoming channel is about to stage our fulfil upstream: the next round stages it (the row moves in that step)",
  "channel.chain_event.handled":
    "a chain event is handled, its JetStream ack not sent: it is delivered again and handled again without harm",

  // ---- the signer (services/signer)
  "signer.policy.decided":
    "the policy passed inside its transaction, nothing committed: the request is lost and asked again, nothing was signed",
  "signer.remote_signed.committed":
    "the signature of the peer's commitment is recorded, not returned: asking again gets it signed again (the same commitment)",
  "signer.revealed.committed":
    "our revocation is recorded, the preimage not returned: asking again reveals the same preimage and nothing else",
  "signer.peer_revocation.committed":
    "the peer's revocation is recorded, not answered: the channel service gives it again (idempotent)",
  "signer.invoice_reveal.committed":
    "an invoice's reveal is recorded, R not returned: asking again returns the same R",

  // ---- the peer gateway (services/peer)
  "peer.in.received":
    "a message from the peer is decrypted, not published on NATS: lost with the connection, the peer retransmits it",
  "peer.in.published":
    "a message from the peer is published on NATS: the connection dies with us, the channel service runs it at most once",
  "peer.out.taken":
    "a message to the peer is taken from NATS, not written: the channel service retransmits it on the next connection",
  "peer.out.written":
    "a message is written to the peer: the next connection's acks say it arrived, nothing is sent twice",

  // ---- the watchtower and chain watcher (services/watchtower)
  "tower.records.stored":
    "revocation records are committed, their JetStream messages not acked: redelivered and stored once",
  "tower.block.published":
    "a block's events are on JetStream, the cursor not saved: the block is handled again, its events deduplicated by id",
  "tower.justice.committed":
    "signed justice is committed, not broadcast: the next check of the breach broadcasts it",
  "tower.justice.sent":
    "justice is broadcast: the next check finds it in the mempool and does not sign another",
} as const satisfies Record<string, string>;

export type CrashPoint = keyof typeof CRASH_POINTS;

/** The services that have crash points: the part of a point's name before the first dot. */
export type CrashService = "channel" | "signer" | "peer" | "tower";

/** Every crash point, in the order of the list. */
export const CRASH_POINT_NAMES: readonly CrashPoint[] = Object.keys(CRASH_POINTS) as CrashPoint[];

/** The service a crash point belongs to. */
export const serviceOf = (point: CrashPoint): CrashService =>
  point.slice(0, point.indexOf(".")) as CrashService;

export const isCrashPoint = (name: string): name is CrashPoint => Object.hasOwn(CRASH_POINTS, name);
