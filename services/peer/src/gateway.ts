import net, { type AddressInfo, type Server, type Socket } from "node:net";
import { once } from "node:events";
import type { NatsConnection, Subscription } from "nats";
import { crashPoint } from "@ln/crash";
import { decodePkt, encodePkt, OUT_SEQ_HEADER, WireError } from "@ln/proto";
import {
  AuthenticateError,
  ConnectionClosed,
  authenticate,
  initiate,
  respond,
  type NoiseConnection,
  type SignSession,
  type StaticEcdh,
} from "@ln/transport";
import {
  encodePeerEvent,
  peerSubjects,
  type DisconnectReason,
  type PeerConnectErrorCode,
  type PeerConnectionInfo,
  type PeerEvent,
} from "@ln/proto";

export interface PeerGatewayOptions {
  /** Our node id: the 33-byte compressed node public key. */
  nodeId: Buffer;
  /** Handshake ECDH with the node key (the signer in production). */
  staticEcdh: StaticEcdh;
  /** The authenticate `session_sig` with the node key (the signer in production). */
  signSession: SignSession;
  nats: NatsConnection;
  /** Subjects are `<prefix>.<peerNodeIdHex>.{in,out,events}`. Default "peer". */
  subjectPrefix?: string;
  /** Deadline for the three acts, and separately for ackFor + authenticate. Default 10 s. */
  handshakeTimeoutMs?: number;
  /** Per-connection, per-direction buffer cap (transport). Default 1 MiB. */
  maxBufferedBytes?: number;
  /** Inbound connections mid-handshake (acts or authenticate) at once. Default 256. */
  maxPendingHandshakes?: number;
  /** The `ack` to put in our authenticate to this peer (the channel service's count). */
  ackFor: (peerNodeId: Buffer) => Promise<bigint>;
  /** One record per event, its level set where it happens. Never given keys, preimages or tokens. */
  log?: (e: PeerLogEvent) => void;
}

/** A gateway or control event: its name, its level, and context fields (peer, reason, code...). */
export interface PeerLogEvent {
  event: string;
  level: "info" | "warn" | "error";
  [field: string]: unknown;
}

export interface Connected {
  peerNodeId: string;
  /** The peer's authenticate ack. */
  theirAck: bigint;
}

/** Why `PeerGateway.connect` failed; `message` is written for an operator and holds no secret. */
export class DialError extends Error {
  override readonly name = "DialError";
  constructor(
    readonly code: Exclude<PeerConnectErrorCode, "BAD_REQUEST">,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Where a connection came from: for `connections`. */
interface Origin {
  host: string;
  port: number;
  direction: "inbound" | "outbound";
}

interface Session {
  readonly peer: string;
  readonly origin: Origin;
  readonly conn: NoiseConnection;
  readonly sub: Subscription;
  readonly subjects: { in: string; out: string; events: string };
  ended: boolean;
  /**
   * The highest outbound sequence number the peer has on this connection: its authenticate ack,
   * then each numbered pkt written (OUT_SEQ_HEADER). Only the next number is written.
   */
  sentSeq: bigint;
  /** When it was attached, in the order of #order. */
  attachedAt: number;
  /** Inbound pkts published since the last NATS flush. */
  unflushed: number;
}

const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_PENDING = 256;
const MAX_LOGGED_TEXT = 200;
const FLUSH_EVERY = 256;
const MAX_U64 = (1n << 64n) - 1n;

const clip = (s: string): string => (s.length > MAX_LOGGED_TEXT ? `${s.slice(0, MAX_LOGGED_TEXT)}...` : s);
const errorText = (e: unknown): string => clip(e instanceof Error ? e.message : String(e));

/** Resolves once the socket connects; rejects if it errors or is destroyed (our deadline) first. */
function connected(socket: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (): void => {
      socket.off("connect", onConnect);
      socket.off("error", onError);
      socket.off("close", onClose);
    };
    const onConnect = (): void => (done(), resolve());
    const onError = (e: Error): void => (done(), reject(e));
    const onClose = (): void => (done(), reject(new Error("closed before the TCP connection was made")));
    socket.once("connect", onConnect);
    socket.once("error", onError);
    socket.once("close", onClose);
  });
}

/** A failed dial as a DialError with a message that says what to check. */
function dialError(
  e: unknown,
  c: {
    stage: "tcp" | "handshake" | "authenticate";
    timedOut: boolean;
    where: string;
    peerHex: string;
    timeoutMs: number;
  },
): DialError {
  const opts = { cause: e };
  if (c.stage === "tcp") {
    const code = (e as { code?: unknown }).code;
    const why = c.timedOut
      ? `no TCP connection within ${2 * c.timeoutMs} ms`
      : typeof code === "string"
        ? code
        : errorText(e);
    return new DialError(
      "UNREACHABLE",
      `cannot reach ${c.where} (${why}): check the host and port, and that the peer is listening there`,
      opts,
    );
  }
  if (c.timedOut || (e instanceof ConnectionClosed && e.code === "HANDSHAKE_TIMEOUT"))
    return new DialError(
      "HANDSHAKE_TIMEOUT",
      `the ${c.stage === "handshake" ? "BOLT #8 handshake" : "authenticate exchange"} with ${c.where} did not finish in time: the peer is slow or not a Lightning node of this protocol`,
      opts,
    );
  if (c.stage === "handshake" && e instanceof ConnectionClosed)
    return new DialError(
      "HANDSHAKE_FAILED",
      `the BOLT #8 handshake with ${c.where} failed (${e.handshakeCode ?? e.code}): check that ${c.peerHex} is the node id of the node listening there`,
      opts,
    );
  if (c.stage === "handshake")
    return new DialError(
      "INTERNAL",
      `the BOLT #8 handshake with ${c.where} failed on our side (${errorText(e)}): check that the signer is reachable`,
      opts,
    );
  if (e instanceof AckError)
    return new DialError(
      "ACK_UNAVAILABLE",
      `could not get our ack for ${c.peerHex} from the channel service (${errorText(e.cause)}): check the channel service's logs`,
      opts,
    );
  if (e instanceof AuthenticateError)
    return new DialError(
      "AUTHENTICATE_FAILED",
      e.code === "PEER_ERROR"
        ? `the peer at ${c.where} refused the session: ${clip(e.problem)}`
        : `the peer at ${c.where} sent an invalid authenticate (${e.code})`,
      opts,
    );
  if (e instanceof ConnectionClosed)
    return new DialError(
      "AUTHENTICATE_FAILED",
      `the connection to ${c.where} closed during authenticate (${e.code}): the peer may have refused us, see its logs`,
      opts,
    );
  return new DialError("INTERNAL", `connecting to ${c.where} failed: ${errorText(e)}`, opts);
}

/** ackFor failed (the channel service's answer was an error). */
class AckError extends Error {
  override readonly name = "AckError";
}

/**
 * The peer gateway (DESIGN.md 1, 3): accepts and dials BOLT #8 connections, runs `authenticate`,
 * keeps one live connection per peer node id, and relays raw `pkt` bytes to and from NATS.
 */
export class PeerGateway {
  readonly #o: PeerGatewayOptions;
  readonly #prefix: string;
  readonly #timeoutMs: number;
  readonly #maxPending: number;
  readonly #log: (e: PeerLogEvent) => void;
  readonly #sessions = new Map<string, Session>();
  /** Orders ack requests and attachments (see #authenticate). */
  #order = 0;
  /** Inbound sockets between accept and a finished authenticate, oldest first. */
  readonly #pending = new Set<Socket>();
  /** Every socket we hold (pending, dialling or live), so close() can end them all. */
  readonly #sockets = new Set<Socket>();
  readonly #servers = new Set<Server>();
  #evicted = 0;
  #evictedLoggedAt = 0;
  #closed = false;

  constructor(opts: PeerGatewayOptions) {
    if (opts.nodeId.length !== 33) throw new Error("nodeId must be a 33-byte compressed public key");
    this.#o = opts;
    this.#prefix = opts.subjectPrefix ?? "peer";
    this.#timeoutMs = opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.#maxPending = Math.max(1, opts.maxPendingHandshakes ?? DEFAULT_MAX_PENDING);
    const log = opts.log;
    this.#log = log
      ? (line) => {
          try {
            log(line);
          } catch {
            // a broken logger must not take the gateway down
          }
        }
      : () => undefined;
  }

  /** Peers with a live, authenticated connection (node ids as hex). */
  get peers(): string[] {
    return [...this.#sessions.keys()];
  }

  /** Live, authenticated connections: who, where, which way. */
  get connections(): PeerConnectionInfo[] {
    return [...this.#sessions.values()].map((s) => ({ nodeId: s.peer, ...s.origin }));
  }

  /** Inbound connections currently mid-handshake. */
  get pendingHandshakes(): number {
    return this.#pending.size;
  }

  /** Starts accepting connections; resolves with the bound port (pass 0 for any). */
  async listen(port: number, host: string): Promise<number> {
    if (this.#closed) throw new Error("gateway closed");
    const server = net.createServer((s) => this.#accept(s));
    server.on("error", (e) => this.#log({ level: "error", event: "listen_error", error: errorText(e) }));
    server.listen(port, host);
    await once(server, "listening");
    this.#servers.add(server);
    const bound = (server.address() as AddressInfo).port;
    this.#log({ level: "info", event: "listening", host, port: bound });
    return bound;
  }

  /**
   * Dials a peer, runs the handshake (authenticating `remoteNodeId`) and authenticate. Fails
   * with a `DialError` (its `cause` is the underlying error).
   */
  async connect(host: string, port: number, remoteNodeId: Buffer): Promise<Connected> {
    const where = `${host}:${port}`;
    const peerHex = remoteNodeId.toString("hex");
    if (this.#closed) throw new DialError("GATEWAY_CLOSED", "the peer gateway is shutting down");
    const socket = net.connect(port, host);
    this.#track(socket);
    let timedOut = false;
    const deadline = setTimeout(() => {
      timedOut = true;
      socket.destroy();
    }, 2 * this.#timeoutMs); // acts + authenticate
    let stage: "tcp" | "handshake" | "authenticate" = "tcp";
    try {
      await connected(socket);
      stage = "handshake";
      const conn = await initiate(socket, { ...this.#connOpts(), remoteStatic: remoteNodeId });
      stage = "authenticate";
      const { theirAck, askedAt } = await this.#authenticate(conn);
      clearTimeout(deadline);
      this.#attach(conn, theirAck, askedAt, { host, port, direction: "outbound" });
      return { peerNodeId: conn.remoteStatic.toString("hex"), theirAck };
    } catch (e) {
      socket.destroy();
      const err = this.#closed
        ? new DialError("GATEWAY_CLOSED", "the peer gateway is shutting down", { cause: e })
        : dialError(e, { stage, timedOut, where, peerHex, timeoutMs: this.#timeoutMs });
      this.#log({
        level: "warn",
        event: "dial_failed",
        host,
        port,
        peer: peerHex,
        code: err.code,
        error: errorText(e),
      });
      throw err;
    } finally {
      clearTimeout(deadline);
    }
  }

  /** Stops listening, closes every connection (publishing `disconnected`) and unsubscribes. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const servers = [...this.#servers].map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    for (const s of [...this.#sessions.values()]) this.#end(s, "GATEWAY_CLOSED");
    for (const s of this.#sockets) s.destroy();
    this.#pending.clear();
    await Promise.all(servers);
    this.#servers.clear();
    if (!this.#o.nats.isClosed()) await this.#o.nats.flush().catch(() => undefined);
  }

  #connOpts(): {
    localStatic: Buffer;
    staticEcdh: StaticEcdh;
    handshakeTimeoutMs: number;
    maxBufferedBytes?: number;
  } {
    const base = {
      localStatic: this.#o.nodeId,
      staticEcdh: this.#o.staticEcdh,
      handshakeTimeoutMs: this.#timeoutMs,
    };
    return this.#o.maxBufferedBytes === undefined
      ? base
      : { ...base, maxBufferedBytes: this.#o.maxBufferedBytes };
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on("error", () => undefined); // reported through the transport's close reasons
    socket.once("close", () => {
      this.#sockets.delete(socket);
      this.#pending.delete(socket);
    });
  }

  #accept(socket: Socket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    this.#track(socket);
    // At the cap the oldest pending handshake makes room: a flood of stuck connections then only
    // shortens how long each may take, it cannot hold every slot against a peer that completes.
    if (this.#pending.size >= this.#maxPending) {
      const oldest = this.#pending.values().next().value;
      if (oldest) {
        this.#pending.delete(oldest);
        oldest.destroy();
        this.#noteEvicted();
      }
    }
    this.#pending.add(socket);
    const remote = `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}`;
    const origin: Origin = {
      host: socket.remoteAddress ?? "",
      port: socket.remotePort ?? 0,
      direction: "inbound",
    };
    // The transport's deadline covers the three acts; this one covers the acts plus authenticate.
    const deadline = setTimeout(() => socket.destroy(), 2 * this.#timeoutMs);
    void (async () => {
      try {
        const conn = await respond(socket, this.#connOpts());
        const { theirAck, askedAt } = await this.#authenticate(conn);
        if (!this.#pending.delete(socket)) {
          conn.close(); // evicted or the gateway closed meanwhile
          return;
        }
        this.#attach(conn, theirAck, askedAt, origin);
      } catch (e) {
        socket.destroy();
        const line: PeerLogEvent = { level: "warn", event: "inbound_failed", remote, error: errorText(e) };
        if (e instanceof ConnectionClosed) line["code"] = e.handshakeCode ?? e.code;
        if (e instanceof AuthenticateError) line["code"] = e.code;
        this.#log(line);
      } finally {
        clearTimeout(deadline);
        this.#pending.delete(socket);
      }
    })();
  }

  #noteEvicted(): void {
    this.#evicted += 1;
    const now = Date.now();
    if (now - this.#evictedLoggedAt >= 1000) {
      this.#log({
        level: "warn",
        event: "pending_handshakes_full",
        evicted: this.#evicted,
        cap: this.#maxPending,
      });
      this.#evictedLoggedAt = now;
      this.#evicted = 0;
    }
  }

  /** ackFor, then authenticate both ways; failures close the connection (after an `error`). */
  async #authenticate(conn: NoiseConnection): Promise<{ theirAck: bigint; askedAt: number }> {
    // The ack counts what the channel service took from this peer: a connection with it that
    // went on delivering after the count was read would deliver messages the peer then resends
    // on this one (from our ack), and they would be processed twice. It ends first.
    const askedAt = ++this.#order;
    const old = this.#sessions.get(conn.remoteStatic.toString("hex"));
    if (old) this.#end(old, "REPLACED");
    let ack: bigint;
    try {
      ack = await this.#o.ackFor(conn.remoteStatic);
    } catch (e) {
      conn.close();
      throw new AckError(`ackFor failed: ${errorText(e)}`, { cause: e });
    }
    if (ack < 0n || ack > MAX_U64) {
      conn.close();
      throw new AckError(`ackFor returned ${ack}, not a uint64`, {
        cause: new Error(`${ack} is not a uint64`),
      });
    }
    const { remoteAck } = await authenticate(conn, {
      nodeId: this.#o.nodeId,
      signSession: this.#o.signSession,
      ack,
    });
    return { theirAck: remoteAck, askedAt };
  }

  /** Ends the connection with a peer, if this gateway holds one. */
  disconnect(peerNodeIdHex: string, reason: DisconnectReason): boolean {
    const s = this.#sessions.get(peerNodeIdHex);
    if (!s) return false;
    this.#end(s, reason);
    return true;
  }

  #attach(conn: NoiseConnection, theirAck: bigint, askedAt: number, origin: Origin): void {
    if (this.#closed || !conn.isOpen) {
      conn.close();
      return;
    }
    const peer = conn.remoteStatic.toString("hex");
    const old = this.#sessions.get(peer);
    // Attached after our ack was read: it may have delivered what our ack leaves out. It stays.
    if (old && old.attachedAt > askedAt) {
      this.#log({ level: "info", event: "superseded_dropped", peer });
      conn.close();
      return;
    }
    if (old) this.#end(old, "REPLACED");
    const subjects = peerSubjects(this.#prefix, peer);
    // Subscribe before announcing: the channel service's retransmission after `connected`
    // reaches the server after our SUB, on the same NATS connection.
    const sub = this.#o.nats.subscribe(subjects.out);
    const s: Session = {
      peer,
      origin,
      conn,
      sub,
      subjects,
      ended: false,
      sentSeq: theirAck,
      attachedAt: ++this.#order,
      unflushed: 0,
    };
    this.#sessions.set(peer, s);
    this.#publishEvent(s, { type: "connected", theirAck: theirAck.toString() });
    this.#log({ level: "info", event: "connected", peer, theirAck: theirAck.toString() });
    void conn.closed.then((c) => this.#end(s, c.code));
    void this.#pumpIn(s);
    void this.#pumpOut(s);
  }

  #publishEvent(s: Session, e: PeerEvent): void {
    try {
      this.#o.nats.publish(s.subjects.events, encodePeerEvent(e));
    } catch (err) {
      this.#log({ level: "warn", event: "nats_publish_failed", peer: s.peer, error: errorText(err) });
    }
  }

  /** Peer → NATS: every valid non-authenticate pkt, as the bytes the peer sent. */
  async #pumpIn(s: Session): Promise<void> {
    for (;;) {
      let raw: Buffer;
      try {
        raw = await s.conn.receive();
      } catch {
        return; // closed: the reason arrives through conn.closed
      }
      // Replaced or ended: a frame already read from the old connection must not follow the new
      // one's `connected` (the channel service would take it twice: the new connection
      // retransmits from its own ack).
      if (s.ended) return;
      let kind: string;
      try {
        kind = decodePkt(raw).kind;
      } catch (e) {
        const problem = e instanceof WireError ? e.problem : "pkt: malformed";
        this.#log({
          level: "warn",
          event: "bad_pkt",
          peer: s.peer,
          code: e instanceof WireError ? e.code : "MALFORMED",
          problem: clip(problem),
        });
        s.conn.send(encodePkt({ kind: "error", problem })).catch(() => undefined); // written before close
        this.#end(s, "BAD_PKT");
        return;
      }
      if (kind === "authenticate") {
        this.#log({ level: "info", event: "extra_authenticate_ignored", peer: s.peer });
        continue;
      }
      if (kind === "error") this.#log({ level: "warn", event: "peer_error", peer: s.peer });
      crashPoint("peer.in.received");
      try {
        this.#o.nats.publish(s.subjects.in, raw);
      } catch (e) {
        this.#log({ level: "warn", event: "nats_publish_failed", peer: s.peer, error: errorText(e) });
      }
      crashPoint("peer.in.published");
      // NATS publish never blocks: every so often wait for the server, so a fast peer is held
      // back by TCP (we stop calling receive) rather than growing the NATS client's buffer.
      if (++s.unflushed >= FLUSH_EVERY) {
        s.unflushed = 0;
        await this.#o.nats.flush().catch(() => undefined);
      }
    }
  }

  /** NATS → peer, in order; a message that would not decode (or an authenticate) is not sent. */
  async #pumpOut(s: Session): Promise<void> {
    try {
      for await (const m of s.sub) {
        if (s.ended) break;
        let kind: string;
        try {
          kind = decodePkt(m.data).kind;
        } catch (e) {
          this.#log({ level: "info", event: "bad_outbound_dropped", peer: s.peer, error: errorText(e) });
          continue;
        }
        if (kind === "authenticate") {
          this.#log({ level: "info", event: "outbound_authenticate_dropped", peer: s.peer });
          continue;
        }
        const seq = outSeq(m.headers?.get(OUT_SEQ_HEADER));
        if (seq !== undefined) {
          // The peer takes messages by their order alone: a repeat would be processed twice, and
          // one after a gap (published before this connection subscribed) as the missing one.
          // The retransmission that follows `connected` brings the missing ones, in order.
          if (seq !== s.sentSeq + 1n) {
            const event = seq <= s.sentSeq ? "outbound_repeat_dropped" : "outbound_gap_dropped";
            this.#log({
              level: "info",
              event,
              peer: s.peer,
              seq: seq.toString(),
              sent: s.sentSeq.toString(),
            });
            continue;
          }
          s.sentSeq = seq;
        }
        crashPoint("peer.out.taken");
        await s.conn.send(m.data);
        crashPoint("peer.out.written");
        // Draft 6.3: an `error` fails the connection. Ended here, after it is written, so the
        // peer cannot go on sending on a connection whose channel is gone.
        if (kind === "error") {
          this.#end(s, "SENT_ERROR");
          break;
        }
      }
    } catch {
      // the connection closed under a send: the rest is dropped; the channel service retransmits
    }
  }

  #end(s: Session, reason: DisconnectReason): void {
    if (s.ended) return;
    s.ended = true;
    try {
      s.sub.unsubscribe();
    } catch {
      // the NATS connection is already closed
    }
    if (this.#sessions.get(s.peer) === s) this.#sessions.delete(s.peer);
    this.#publishEvent(s, { type: "disconnected", reason });
    this.#log({ level: "info", event: "disconnected", peer: s.peer, reason });
    s.conn.close();
  }
}

/** The sequence number of an outbound pkt (OUT_SEQ_HEADER), if it carries a valid one. */
function outSeq(header: string | undefined): bigint | undefined {
  return header !== undefined && /^[0-9]{1,20}$/.test(header) ? BigInt(header) : undefined;
}
