import { isRejectionCode, REJECTION_STATUS, type RejectionCode } from "@ln/control-api";
import { BackendError, type BackendErrorCode } from "./backend.js";

/** An error the API reports as `{ error: { code, message } }` with this HTTP status. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    /** For a 405: the methods the route takes (the Allow header). */
    readonly allow?: string,
  ) {
    super(message);
  }
}

const BACKEND_STATUS: Record<Exclude<BackendErrorCode, RejectionCode>, { status: number; next: string }> = {
  NOT_FOUND: { status: 404, next: "check the id (GET /v1/channels lists channels)" },
  INVALID: { status: 400, next: "fix the request and retry" },
  CONFLICT: { status: 409, next: "check the channel's state with GET /v1/channels/{id}" },
  PEER_UNREACHABLE: { status: 502, next: "connect the peer with POST /v1/peers, then retry" },
  UNAVAILABLE: { status: 503, next: "retry later" },
};

/** The status of a refusal (REJECTION_STATUS) and what the caller can do about it. */
function refusal(code: RejectionCode): { status: number; next: string } {
  const status = REJECTION_STATUS[code];
  if (code === "INSUFFICIENT_FUNDS")
    return { status, next: "nothing was done; use a smaller amount or add funds" };
  return status === 409
    ? { status, next: "nothing was done; check the channel's state with GET /v1/channels/{id}" }
    : { status, next: "nothing was done; change the request and retry" };
}

export interface ErrorJson {
  error: { code: string; message: string; requestId?: string };
}

export interface MappedError {
  status: number;
  body: ErrorJson;
  /** Server faults are logged in full; the client gets a generic message. */
  internal: boolean;
}

interface FastifyLikeError {
  statusCode?: unknown;
  code?: unknown;
  message?: unknown;
  validation?: unknown;
}

const isObject = (e: unknown): e is FastifyLikeError => typeof e === "object" && e !== null;

export function mapError(err: unknown, requestId: string): MappedError {
  const body = (code: string, message: string): ErrorJson => ({ error: { code, message, requestId } });
  if (err instanceof ApiError)
    return { status: err.statusCode, body: body(err.code, err.message), internal: false };
  if (err instanceof BackendError) {
    // A refusal by the channel core: its own code, the status from the contract's one table.
    const m = isRejectionCode(err.code) ? refusal(err.code) : BACKEND_STATUS[err.code];
    return { status: m.status, body: body(err.code, `${err.message}; ${m.next}`), internal: m.status >= 500 };
  }
  if (isObject(err) && err.validation !== undefined)
    return {
      status: 400,
      body: body("VALIDATION_FAILED", `${String(err.message)}; fix the request (see /docs) and retry`),
      internal: false,
    };
  if (isObject(err) && typeof err.statusCode === "number" && err.statusCode >= 400 && err.statusCode < 500)
    return {
      status: err.statusCode,
      body: body(
        typeof err.code === "string" ? err.code : "BAD_REQUEST",
        `${String(err.message)}; see /docs`,
      ),
      internal: false,
    };
  return {
    status: 500,
    body: body("INTERNAL", `internal error; retry later, and report request id ${requestId} if it persists`),
    internal: true,
  };
}
