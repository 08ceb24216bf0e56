/** lnctl graph: parsing, the tables it prints, and the command against a served API. */
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiStore, buildApi, type ApiOptions } from "../../../services/channel/src/api/index.js";
import { MemoryBackend } from "../../../services/channel/test/memory-backend.js";
import { parseCommandLine } from "../src/cli.js";
import type { Graph } from "../src/client.js";
import * as F from "../src/format.js";
import { lnctl, NODE } from "./helpers.js";
import { testDatabaseUrl } from "@ln/testkit";

type Pool = ApiOptions["pool"];
const requireFromChannel = createRequire(new URL("../../../services/channel/package.json", import.meta.url));
const pg = requireFromChannel("pg") as {
  Pool: new (cfg: { connectionString: string; max: number }) => Pool;
};
const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
const schema = `lnctl_graph_test_${randomBytes(6).toString("hex")}`;
const OURS = `02${"11".repeat(32)}`;
const OTHER = `03${"77".repeat(32)}`;

let app: Awaited<ReturnType<typeof buildApi>>;
let url = "";
let readonly = "";
let channelId = "";
let ourNode = "";

beforeAll(async () => {
  const backend = new MemoryBackend({ pool });
  ourNode = backend.nodeId;
  app = await buildApi({ pool, schema, backend });
  readonly = (await new ApiStore(pool, schema).createToken("lnctl graph", ["readonly"])).token;
  await app.listen({ host: "127.0.0.1", port: 0 });
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  await backend.connectPeer({ host: "127.0.0.1", port: 9735, nodeId: NODE });
  channelId = (await backend.openChannel({ nodeId: NODE, fundingSat: 1_000_000n as never })).id;
  backend.confirmAnchor(channelId, { height: 700, txIndex: 1, outputIndex: 0 });
});
afterAll(async () => {
  await app?.close();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

const policy = {
  disabled: false,
  feeBaseMsat: "1000",
  feeProportionalMillionths: 250,
  cltvExpiryDelta: 144,
  htlcMinimumMsat: "1000",
  htlcMaximumMsat: "990000000",
  timestamp: 1_700_000_000,
};
const graph: Graph = {
  nodeId: OURS,
  nodes: [
    { nodeId: OURS, alias: null, addresses: [], timestamp: null, ours: true },
    { nodeId: OTHER, alias: "carol", addresses: ["10.0.0.7:9735"], timestamp: 1_700_000_000, ours: false },
  ],
  channels: [
    {
      shortChannelId: "700x1x0",
      shortChannelIdNumber: "769658139508736",
      node1: OURS,
      node2: OTHER,
      capacitySat: "1000000",
      announced: true,
      ours: true,
      channelId: "chan-1",
      node1Policy: policy,
      node2Policy: { ...policy, disabled: true, htlcMaximumMsat: null, feeBaseMsat: "0" },
    },
  ],
};

describe("lnctl graph", () => {
  it("parses with no arguments and refuses any", () => {
    expect(parseCommandLine(["graph"])).toMatchObject({ ok: true, command: { name: "graph" } });
    expect(parseCommandLine(["graph", "extra"])).toMatchObject({ ok: false });
  });

  it("prints the nodes and the channels as tables, each direction's policy in its column", () => {
    const out = F.formatGraph(graph).split("\n");
    expect(out[0]).toBe(`our node: ${OURS}`);
    expect(out[2]).toBe("2 nodes");
    expect(out[3]).toMatch(/^NODE ID\s+ALIAS\s+ADDRESSES\s+ANNOUNCED\s+OURS$/);
    expect(out[4]?.split(/\s{2,}/)).toEqual([OURS, "-", "-", "-", "yes"]);
    expect(out[5]?.split(/\s{2,}/)).toEqual([OTHER, "carol", "10.0.0.7:9735", "2023-11-14T22:13:20.000Z"]);
    expect(out[7]).toBe("1 channels");
    expect(out[8]).toMatch(/^SCID\s+NODE 1\s+NODE 2\s+CAPACITY \(sat\)\s+PUBLIC\s+OURS\s+1->2\s+2->1$/);
    expect(out[9]?.split(/\s{2,}/)).toEqual([
      "700x1x0",
      OURS,
      OTHER,
      "1,000,000",
      "yes",
      "chan-1",
      "1,000 msat + 250 ppm, 144 blocks, 1,000..990,000,000 msat",
      "off 0 msat + 250 ppm, 144 blocks, 1,000.. msat",
    ]);
  });

  it("reads GET /v1/graph with a read-only token: our channel shows, --json gives the body", async () => {
    const ran = await lnctl(["graph"], { LNCTL_URL: url, LNCTL_TOKEN: readonly });
    expect(ran.stderr).toBe("");
    expect(ran.code).toBe(0);
    const lines = ran.stdout.split("\n");
    const row = lines.find((l) => l.startsWith("700x1x0"));
    expect(ourNode < NODE).toBe(true);
    expect(row?.split(/\s{2,}/)).toEqual([
      "700x1x0",
      ourNode,
      NODE,
      "1,000,000",
      "no",
      channelId,
      // MemoryBackend's default policy, our direction only; no maximum for an unannounced one.
      "1,000 msat + 1 ppm, 184 blocks, 1,000.. msat",
      "-",
    ]);
    const json = await lnctl(["--json", "graph"], { LNCTL_URL: url, LNCTL_TOKEN: readonly });
    const body = JSON.parse(json.stdout) as Graph;
    expect(body.nodes.map((n) => n.nodeId)).toEqual([ourNode, NODE]);
    expect(body.channels.map((c) => [c.shortChannelId, c.channelId, c.announced])).toEqual([
      ["700x1x0", channelId, false],
    ]);
  });
});
