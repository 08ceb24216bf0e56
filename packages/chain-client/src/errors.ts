/**
 * The node answered with a JSON-RPC error object (e.g. -26 "non-BIP68-final", -25 missing inputs,
 * -5 not found). The request reached the node and was judged: it is never retried.
 */
export class RpcError extends Error {
  override readonly name = "RpcError";
  constructor(
    /** The node's JSON-RPC error code (bitcoind's RPCErrorCode). */
    readonly code: number,
    /** The node's error message, verbatim. */
    readonly rpcMessage: string,
    /** The RPC method that failed. */
    readonly method: string,
  ) {
    super(`${method} failed on the node with code ${code}: ${rpcMessage}`);
  }
}

export type RpcTransportErrorCode =
  /** No answer within timeoutMs. */
  | "TIMEOUT"
  /** Connection refused/reset, DNS failure, ... */
  | "NETWORK"
  /** An HTTP error status without a JSON-RPC error body (401, 5xx, ...). */
  | "HTTP"
  /** The node answered 2xx but the body is not the JSON-RPC shape we expected. */
  | "BAD_RESPONSE";

/**
 * The request did not get a judged answer from the node. TIMEOUT, NETWORK and HTTP 5xx are
 * retried for idempotent reads; BAD_RESPONSE and HTTP 4xx are not.
 */
export class RpcTransportError extends Error {
  override readonly name = "RpcTransportError";
  constructor(
    readonly code: RpcTransportErrorCode,
    message: string,
    readonly method: string,
    /** HTTP status for code "HTTP". */
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export type BlockFollowerErrorCode =
  /** The onBlock callback threw or rejected; the follower stopped at the last saved cursor. */
  | "HANDLER_FAILED"
  /** The reorg is deeper than the recent-blocks window we keep. */
  | "REORG_TOO_DEEP"
  /** The stored cursor is not usable (e.g. it is above the node's tip after the node was reset). */
  | "BAD_CURSOR";

export class BlockFollowerError extends Error {
  override readonly name = "BlockFollowerError";
  constructor(
    readonly code: BlockFollowerErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
