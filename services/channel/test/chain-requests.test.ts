import { randomBytes } from "node:crypto";
import { sat } from "@ln/bitcoin";
import { encodeTip } from "@ln/proto";
import { connect, type NatsConnection, type Subscription } from "nats";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// The real chain watcher and regtest node (not dependencies of this package: reached by path).
import { startRegtest, type Regtest } from "../../../packages/regtest/src/index.js";
import { ChainWatcher, serveChainRequests } from "../../watchtower/src/index.js";
import { broadcastTx, chainTip, ChainRequestError, watchScripts } from "../src/onchain/chain-requests.js";
import { testDatabaseUrl, testNatsUrl } from "@ln/testkit";

const run = randomBytes(4).toString("hex");
const PREFIX = `chreq_${run}.chain`;
const SCHEMA = `chreq_${run}`;
const pool = new pg.Pool({ connectionString: testDatabaseUrl() });
let rt: Regtest;
let nc: NatsConnection;
let subs: Subscription[] = [];

beforeAll(async () => {
  rt = await startRegtest();
  nc = await connect({ servers: testNatsUrl() });
  const watcher = new ChainWatcher({
    pool,
    schema: SCHEMA,
    rpc: rt.rpc,
    js: nc.jetstream(),
    subjectPrefix: PREFIX,
  });
  await watcher.migrate();
  subs = serveChainRequests(nc, PREFIX, watcher);
}, 60_000);
afterAll(async () => {
  for (const s of subs) s.unsubscribe();
  await nc?.close();
  await pool.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`);
  await pool.end();
  await rt?.stop();
});

async function failure(p: Promise<unknown>): Promise<ChainRequestError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ChainRequestError);
  return e as ChainRequestError;
}

describe("chain requests to a real chain watcher", () => {
  it("watchScripts resolves once the scripts are stored; refuses what is not a script", async () => {
    const a = "0014" + "ab".repeat(20);
    const b = "0014" + "CD".repeat(20);
    await watchScripts(nc, PREFIX, [a, b]);
    await watchScripts(nc, PREFIX, [a]); // again: nothing new
    const rows = await pool.query<{ script_hex: string }>(
      `SELECT script_hex FROM "${SCHEMA}".wallet_scripts ORDER BY script_hex`,
    );
    expect(rows.rows.map((r) => r.script_hex)).toEqual([a, b.toLowerCase()]);
    const e = await failure(watchScripts(nc, PREFIX, ["xyz"]));
    expect(e.code).toBe("REJECTED");
  });

  it("broadcastTx returns the txid, also for a transaction the node already has or confirmed", async () => {
    const funding = await rt.fund(rt.newAddress(), sat(50_000), { confirm: false }); // in the mempool
    expect(await broadcastTx(nc, PREFIX, funding.hex)).toBe(funding.txid);
    await rt.mine(1);
    expect(await broadcastTx(nc, PREFIX, funding.hex)).toBe(funding.txid);
  });

  it("broadcastTx: REJECTED with the node's reason when the node refuses it", async () => {
    const funding = await rt.fund(rt.newAddress(), sat(50_000), { confirm: false });
    // The same transaction with its first input's outpoint changed: it spends a coin that does not exist.
    const tx = Buffer.from(funding.hex, "hex");
    const bad = Buffer.from(tx);
    const inputStart = tx[4] === 0 ? 7 : 5; // version, [segwit marker+flag], input count
    bad[inputStart] = (bad[inputStart] ?? 0) ^ 0xff;
    const e = await failure(broadcastTx(nc, PREFIX, bad.toString("hex")));
    expect(e.code).toBe("REJECTED");
    expect(e.reason).toMatch(/missing|spent|script|input/i);
    expect((await failure(broadcastTx(nc, PREFIX, "00"))).code).toBe("REJECTED");
    expect((await failure(broadcastTx(nc, PREFIX, "not hex"))).code).toBe("REJECTED");
  });

  it("chainTip is the node's best block", async () => {
    const tip = await chainTip(nc, PREFIX);
    expect(tip).toEqual({
      height: rt.height(),
      hash: await rt.rpc.getBestBlockHash(),
      time: (await rt.rpc.getBlockHeader(await rt.rpc.getBestBlockHash())).time,
    });
  });

  it("UNAVAILABLE when no chain watcher answers, naming the prefix and what to do", async () => {
    const other = `chreq_${run}_nobody.chain`;
    const e = await failure(broadcastTx(nc, other, "00"));
    expect(e.code).toBe("UNAVAILABLE");
    expect(e.message).toContain(`chain watcher for ${other} is not answering`);
    expect(e.message).toMatch(/start it/);
    expect((await failure(chainTip(nc, other))).code).toBe("UNAVAILABLE");
    expect((await failure(watchScripts(nc, other, ["51"]))).code).toBe("UNAVAILABLE");
  });

  it("UNAVAILABLE when the watcher is too slow, or cannot reach its node and has seen no block", async () => {
    const slow = `chreq_${run}_slow.chain`;
    const silent = nc.subscribe(`${slow}.tip`); // subscribed, never answers
    const e = await failure(chainTip(nc, slow, 200));
    expect(e.code).toBe("UNAVAILABLE");
    expect(e.message).toContain("no answer within 200 ms");
    silent.unsubscribe();
    const blind = `chreq_${run}_blind.chain`;
    const s = nc.subscribe(`${blind}.tip`, {
      callback: (_err, msg) => msg.respond(encodeTip({ height: 0, hash: "", time: 0 })),
    });
    expect((await failure(chainTip(nc, blind))).code).toBe("UNAVAILABLE");
    s.unsubscribe();
  });
});
