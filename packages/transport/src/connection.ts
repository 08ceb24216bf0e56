import type { Socket } from "node:net";
import type { MessageCipher } from "./cipher.js";
import { HandshakeError, TransportError } from "./errors.js";
import {
  ACT_ONE_BYTES,
  ACT_THREE_BYTES,
  ACT_TWO_BYTES,
  InitiatorHandshake,
  ResponderHandshake,
  type HandshakeResult,
  type StaticEcdh,
} from "./handshake.js";

const MAC_BYTES = 16;
const HEADER_BYTES = 2 + MAC_BYTES;

/** Why a connection ended. Every end has exactly one, readable from `NoiseConnection.closed`. */
export type CloseCode =
  | "LOCAL_CLOSE" // we closed it
  | "PEER_CLOSED" // the peer closed it (between messages, or mid-frame)
  | "HANDSHAKE_TIMEOUT" // the three acts did not finish in time
  | "HANDSHAKE_FAILED" // an act was invalid: `handshakeCode` says which rule
  | "BAD_MAC" // a message failed authentication: tampering or a desynchronised peer
  | "SLOW_PEER" // the peer does not read and our send buffer passed its cap
  | "SOCKET_ERROR";

export class ConnectionClosed extends Error {
  override readonly name = "ConnectionClosed";
  constructor(
    readonly code: CloseCode,
    message: string,
    readonly handshakeCode?: HandshakeError["code"],
  ) {
    super(message);
  }
}

export interface ConnectionOptions {
  /** Our static (node) public key, 33 bytes compressed. */
  localStatic: Uint8Array;
  /** ECDH with our static private key; may call out to the signer. */
  staticEcdh: StaticEcdh;
  /** Deadline for all three acts. Default 10 s. */
  handshakeTimeoutMs?: number;
  /**
   * Cap on bytes buffered per direction. Inbound: past it we stop reading the socket, so TCP
   * pushes back on the peer. Outbound: past it the peer is not reading and we drop it. Default 1 MiB;
   * at least one full frame.
   */
  maxBufferedBytes?: number;
  /** Tests only. */
  ephemeralPriv?: Uint8Array;
}

const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_BUFFERED = 1 << 20;
const MIN_BUFFERED = HEADER_BYTES + 65535 + MAC_BYTES;

/** Reads exact byte counts from a socket, pausing it while more than `cap` bytes wait unread. */
export class ExactReader {
  #chunks: Buffer[] = [];
  #buffered = 0;
  #waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: ConnectionClosed) => void } | undefined;
  #ended: ConnectionClosed | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly cap: number,
  ) {
    socket.on("data", (chunk: Buffer) => {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      if (this.#buffered > this.cap) socket.pause();
      this.#serve();
    });
  }

  get buffered(): number {
    return this.#buffered;
  }

  read(n: number): Promise<Buffer> {
    if (this.#waiter) return Promise.reject(new Error("concurrent read on one connection"));
    return new Promise((resolve, reject) => {
      this.#waiter = { n, resolve, reject };
      this.#serve();
    });
  }

  /** No more bytes will come; a pending or later read fails with `reason`. */
  end(reason: ConnectionClosed): void {
    this.#ended ??= reason;
    this.#serve();
  }

  #serve(): void {
    const w = this.#waiter;
    if (!w) return;
    if (this.#buffered >= w.n) {
      this.#waiter = undefined;
      w.resolve(this.#take(w.n));
      if (this.#buffered <= this.cap && this.socket.isPaused()) this.socket.resume();
    } else if (this.#ended) {
      this.#waiter = undefined;
      w.reject(this.#ended);
    } else if (this.socket.isPaused()) {
      this.socket.resume(); // a read wants more than the cap allowed to sit in the buffer
    }
  }

  #take(n: number): Buffer {
    const all = this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#buffered = rest.length;
    return out;
  }
}

/**
 * An established BOLT #8 connection: length-prefixed encrypted messages over a TCP socket.
 * `receive()` pulls one message at a time: backpressure is the caller not calling it.
 */
export class NoiseConnection {
  readonly remoteStatic: Buffer;
  /** h after act three; `authenticate` signs SHA256(SHA256(h)) to bind the session. */
  readonly handshakeHash: Buffer;
  /** Settles once, with the reason the connection ended. */
  readonly closed: Promise<ConnectionClosed>;
  readonly #socket: Socket;
  readonly #reader: ExactReader;
  readonly #encryptor: MessageCipher;
  readonly #decryptor: MessageCipher;
  readonly #cap: number;
  #reason: ConnectionClosed | undefined;
  #resolveClosed!: (r: ConnectionClosed) => void;

  /** @internal use `initiate` or `respond`. */
  constructor(socket: Socket, reader: ExactReader, result: HandshakeResult, cap: number) {
    this.#socket = socket;
    this.#reader = reader;
    this.#cap = cap;
    this.remoteStatic = result.remoteStatic;
    this.handshakeHash = result.handshakeHash;
    this.#encryptor = result.encryptor;
    this.#decryptor = result.decryptor;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    const ended = (): void => {
      this.#close(new ConnectionClosed("PEER_CLOSED", "the peer closed the connection"));
    };
    socket.on("end", ended);
    socket.on("close", ended);
    socket.on("error", (e: Error) => {
      this.#close(new ConnectionClosed("SOCKET_ERROR", `socket error: ${e.message}`));
    });
    if (socket.destroyed || socket.readableEnded) ended();
  }

  /** Received bytes not yet read by `receive()`; bounded by the cap plus one socket chunk. */
  get bufferedInbound(): number {
    return this.#reader.buffered;
  }

  get isOpen(): boolean {
    return this.#reason === undefined;
  }

  /** Encrypts and writes one message; resolves when the socket accepted it without exceeding the cap. */
  async send(message: Uint8Array): Promise<void> {
    if (this.#reason) throw this.#reason;
    const [header, body, mac] = this.#encryptor.encryptMessageParts(message);
    this.#socket.cork();
    this.#socket.write(header);
    this.#socket.write(body);
    const flushed = this.#socket.write(mac);
    this.#socket.uncork();
    if (this.#socket.writableLength > this.#cap) {
      throw this.#close(
        new ConnectionClosed(
          "SLOW_PEER",
          `the peer is not reading: ${this.#socket.writableLength} bytes queued, cap ${this.#cap}`,
        ),
      );
    }
    if (!flushed) await this.#drained();
  }

  /** The next message, or a ConnectionClosed rejection once the connection has ended. */
  async receive(): Promise<Buffer> {
    if (this.#reason) throw this.#reason;
    try {
      const length = this.#decryptor.decryptLength(await this.#reader.read(HEADER_BYTES));
      return this.#decryptor.decryptBody(await this.#reader.read(length + MAC_BYTES));
    } catch (e) {
      if (e instanceof TransportError) throw this.#close(new ConnectionClosed("BAD_MAC", e.message));
      throw e;
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    for (;;) {
      try {
        yield await this.receive();
      } catch (e) {
        if (e instanceof ConnectionClosed) return;
        throw e;
      }
    }
  }

  /** Closes after what was sent is flushed. */
  close(): void {
    this.#close(new ConnectionClosed("LOCAL_CLOSE", "closed locally"));
  }

  #close(reason: ConnectionClosed): ConnectionClosed {
    if (this.#reason) return this.#reason;
    this.#reason = reason;
    this.#reader.end(reason);
    if (reason.code === "LOCAL_CLOSE") this.#socket.end();
    else this.#socket.destroy();
    this.#resolveClosed(reason);
    for (const wake of this.#drainWaiters) wake();
    return reason;
  }

  /** Sends waiting for the socket to drain; woken by the drain or by the close, then removed. */
  readonly #drainWaiters = new Set<() => void>();

  #drained(): Promise<void> {
    return new Promise((resolve, reject) => {
      const settle = (): void => {
        if (!this.#drainWaiters.delete(settle)) return;
        this.#socket.off("drain", settle);
        if (this.#reason && this.#reason.code !== "LOCAL_CLOSE") reject(this.#reason);
        else resolve();
      };
      this.#drainWaiters.add(settle);
      this.#socket.once("drain", settle);
    });
  }
}

/**
 * Runs the handshake over a connected socket with a deadline; on any failure the socket is
 * destroyed and the returned promise rejects with a ConnectionClosed saying why.
 */
async function handshake(
  socket: Socket,
  opts: ConnectionOptions,
  run: (read: (n: number) => Promise<Buffer>) => Promise<HandshakeResult>,
): Promise<NoiseConnection> {
  const cap = Math.max(opts.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED, MIN_BUFFERED);
  const reader = new ExactReader(socket, cap);
  let failure: ConnectionClosed | undefined;
  const fail = (reason: ConnectionClosed): void => {
    failure ??= reason;
    reader.end(failure);
  };
  const onEnd = (): void =>
    fail(new ConnectionClosed("PEER_CLOSED", "the peer closed the connection during the handshake"));
  const onError = (e: Error): void =>
    fail(new ConnectionClosed("SOCKET_ERROR", `socket error: ${e.message}`));
  socket.on("end", onEnd).on("close", onEnd).on("error", onError);
  const timeoutMs = opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const timer = setTimeout(
    () =>
      fail(new ConnectionClosed("HANDSHAKE_TIMEOUT", `the handshake did not finish within ${timeoutMs} ms`)),
    timeoutMs,
  );
  try {
    const result = await run((n) => reader.read(n));
    if (failure) throw failure;
    return new NoiseConnection(socket, reader, result, cap);
  } catch (e) {
    socket.destroy();
    if (e instanceof HandshakeError) throw new ConnectionClosed("HANDSHAKE_FAILED", e.message, e.code);
    throw e;
  } finally {
    clearTimeout(timer);
    socket.off("end", onEnd).off("close", onEnd).off("error", onError);
  }
}

/** Reads one act; a peer that hangs up mid-act is a short read in BOLT #8's terms. */
async function readAct(
  read: (n: number) => Promise<Buffer>,
  n: number,
  code: HandshakeError["code"],
): Promise<Buffer> {
  try {
    return await read(n);
  } catch (e) {
    if (e instanceof ConnectionClosed && e.code === "PEER_CLOSED")
      throw new HandshakeError(code, `the peer closed the connection before sending its ${n}-byte act`);
    throw e;
  }
}

/** We dialled: act one, read act two, act three. `remoteStatic` is the node we meant to reach. */
export function initiate(
  socket: Socket,
  opts: ConnectionOptions & { remoteStatic: Uint8Array },
): Promise<NoiseConnection> {
  return handshake(socket, opts, async (read) => {
    const hs = new InitiatorHandshake(opts);
    socket.write(await hs.actOne());
    const { act3, result } = await hs.actTwoThenThree(await readAct(read, ACT_TWO_BYTES, "ACT2_READ_FAILED"));
    socket.write(act3);
    return result;
  });
}

/** We accepted: read act one, act two, read act three; we learn who dialled. */
export function respond(socket: Socket, opts: ConnectionOptions): Promise<NoiseConnection> {
  return handshake(socket, opts, async (read) => {
    const hs = new ResponderHandshake(opts);
    socket.write(await hs.actOneThenTwo(await readAct(read, ACT_ONE_BYTES, "ACT1_READ_FAILED")));
    return hs.actThree(await readAct(read, ACT_THREE_BYTES, "ACT3_READ_FAILED"));
  });
}
