/* The channel core's refusals through the control API: each RejectionCode answers with its own
 * code and the status of its kind (409: the channel's state stands in the way; 422: the request
 * cannot be honoured), and a refused payment frees its Idempotency-Key (nothing was sent). */
import { randomBytes } from "node:crypto";
import type { Locktime, Msat } from "@ln/bitcoin";
import { REJECTION_CODES, type RejectionCode } from "@ln/channel-core";
import type { FastifyInstance } from "fastify";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Registry } from "@ln/metrics";
import { ApiStore, BackendError, buildApi, type Payment } from "../src/api/index.js";
import { MemoryBackend } from "./memory-backend.js";
import { testDatabaseUrl } from "@ln/testkit";

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
const schema = `chan_api_rej_${randomBytes(6).toString("hex")}`;

/** Written from the codes' meaning (packages/channel-core REJECTION_CODES), not from the table. */
const EXPECTED: Record<RejectionCode, 409 | 422> = {
  CHANNEL_OPENING: 409,
  CHANNEL_CLOSING: 409,
  CHANNEL_CLOSED: 409,
  CHANNEL_BEHIND: 409,
  CLOSE_ALREADY_STARTED: 409,
  TOO_MANY_HTLCS: 409,
  HTLC_ALREADY_REMOVED: 409,
  NOTHING_TO_COMMIT: 409,
  AWAITING_REVOCATION: 409,
  AMOUNT_OUT_OF_RANGE: 422,
  INVALID_R_HASH: 422,
  ROUTE_TOO_LONG: 422,
  INVALID_EXPIRY: 422,
  EXPIRY_TOO_SOON: 422,
  INSUFFICIENT_FUNDS: 422,
  UNKNOWN_HTLC: 422,
  WRONG_PREIMAGE: 422,
  REASON_TOO_LONG: 422,
  FEE_RATE_OUT_OF_POLICY: 422,
};

/** A backend whose channel refuses the next pay or close with `refuse` (as ChannelNodeBackend does). */
class RefusingBackend extends MemoryBackend {
  refuse: RejectionCode | undefined;
  override async pay(req: {
    channelId: string;
    rHash: string;
    amountMsat: Msat;
    expiry: Locktime;
  }): Promise<Payment> {
    const code = this.refuse;
    this.refuse = undefined;
    if (code) throw new BackendError(code, `the channel refused add_htlc (${code})`);
    return super.pay(req);
  }
  override async closeChannel(id: string): ReturnType<MemoryBackend["closeChannel"]> {
    const code = this.refuse;
    this.refuse = undefined;
    if (code) throw new BackendError(code, `the channel refused close (${code})`);
    return super.closeChannel(id);
  }
}

let app: FastifyInstance;
let backend: RefusingBackend;
let admin = "";
let channelId = "";
const PEER = `03${"22".repeat(32)}`;
const errorOf = (body: string): { code: string; message: string } =>
  (JSON.parse(body) as { error: { code: string; message: string } }).error;

beforeAll(async () => {
  backend = new RefusingBackend({ pool });
  app = await buildApi({ pool, schema, backend, registry: new Registry(), logger: false });
  admin = (await new ApiStore(pool, schema).createToken("rejections", ["admin"])).token;
  const headers = { authorization: `Bearer ${admin}` };
  await app.inject({
    method: "POST",
    url: "/v1/peers",
    headers,
    payload: { host: "127.0.0.1", port: 9735, nodeId: PEER },
  });
  const open = await app.inject({
    method: "POST",
    url: "/v1/channels",
    headers,
    payload: { nodeId: PEER, fundingSat: "1000000" },
  });
  channelId = (JSON.parse(open.body) as { id: string }).id;
});

afterAll(async () => {
  await app?.close();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

describe("rejection codes through the API", () => {
  it("every code has its status", () => {
    expect(Object.keys(EXPECTED).sort()).toEqual([...REJECTION_CODES].sort());
  });

  it.each(REJECTION_CODES)(
    "POST /v1/payments refused with %s: its status and code; the key is freed",
    async (code) => {
      const headers = { authorization: `Bearer ${admin}`, "idempotency-key": `rej-${code}` };
      const payload = { channelId, rHash: "cd".repeat(32), amountMsat: "1000", expiry: { blocks: 500 } };
      backend.refuse = code;
      const res = await app.inject({ method: "POST", url: "/v1/payments", headers, payload });
      expect(res.statusCode).toBe(EXPECTED[code]);
      expect(errorOf(res.body)).toMatchObject({ code });
      expect(errorOf(res.body).message).toContain("nothing was done");
      // Nothing was sent: the same key pays now, once.
      const retry = await app.inject({ method: "POST", url: "/v1/payments", headers, payload });
      expect(retry.statusCode).toBe(201);
      expect(retry.headers["idempotent-replayed"]).toBeUndefined();
    },
  );

  it("a refused close answers with the code too", async () => {
    backend.refuse = "CHANNEL_OPENING";
    const res = await app.inject({
      method: "POST",
      url: `/v1/channels/${channelId}/close`,
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(res.statusCode).toBe(409);
    expect(errorOf(res.body).code).toBe("CHANNEL_OPENING");
  });
});
