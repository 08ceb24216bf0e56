/**
 * The restart phase of the payments bench (issue 17, "Restart"): a channel service with 10,000
 * stored channels ready in at most 10 s. The node's channel service is stopped; `channels` rows
 * are cloned from its real channel's stored state (distinct channel ids, peer node ids and signer
 * channel numbers; the signer's row of that channel cloned the same way, for the startup
 * comparison with the signer's records); the service is started again and timed until it is
 * ready: the ready line printed, the control API answering, every live channel's lease held by the
 * replica (read from the table), and the peers' acks answered (a sample of the cloned peers and the
 * real one, each with the ack its state gives). Then every cloned peer's ack is asked once, to show
 * all are answerable without per-channel work. The rows are removed afterwards (the service is
 * restarted on the real channels alone). Figures only: nothing asserts on timing.
 */
import { ackFor, deserializeState } from "@ln/channel-core";
import { decodeAckReply, peerSubjects } from "@ln/proto";
import { connect as natsConnect, type NatsConnection } from "nats";
import pg from "pg";
import { errText, sleep, type Network, type NetNode } from "../lab/network.js";

export interface RestartFigures {
  channels: number;
  readySeconds: number;
  lines: string[];
}

const AIM_SECONDS = 10;
const CLONE_PREFIX = "restart-bench-";
/** Cloned peers whose ack the readiness check asks (besides the real peer). */
const ACK_SAMPLE = 50;
/** Ack requests in flight at once in the sweep over every cloned peer. */
const ACKS_AT_ONCE = 64;

const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;
const q = (name: string): string => `"${name.replace(/"/g, '""')}"`;
/** The clone's peer node id: 33 bytes, 66 hex, distinct per clone (no real key: nobody dials it). */
const clonePeer = (i: number): string => `03${"ee".repeat(24)}${i.toString(16).padStart(16, "0")}`;
const cloneId = (i: number): string => `${CLONE_PREFIX}${String(i).padStart(6, "0")}`;

/** The columns of a table, in order. */
async function columns(c: pg.Client, schema: string, table: string): Promise<string[]> {
  const r = await c.query<{ column_name: string }>(
    `SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2
      ORDER BY ordinal_position`,
    [schema, table],
  );
  return r.rows.map((x) => x.column_name);
}

/** Asks the channel service for our ack of `peer`; undefined when nobody answers in time. */
async function askAck(nc: NatsConnection, prefix: string, peer: string): Promise<bigint | undefined> {
  try {
    const m = await nc.request(peerSubjects(`${prefix}.peer`, peer).ack, new Uint8Array(), { timeout: 5000 });
    return decodeAckReply(m.data);
  } catch {
    return undefined;
  }
}

/**
 * Stops `node`'s channel service (its first replica), adds `channels` channels cloned from its
 * real one, starts it again and measures until it is ready; removes the clones after.
 */
export async function restartPhase(
  net: Network,
  node: NetNode,
  log: (line: string) => void,
  channels = 10_000,
): Promise<RestartFigures> {
  const pgUrl = net.pgInfra?.url;
  const natsUrl = net.natsInfra?.url;
  if (pgUrl === undefined || natsUrl === undefined) throw new Error("Postgres or NATS is not up");
  const replica = node.replicas[0];
  if (replica === undefined) throw new Error(`${node.name} has no channel replica`);
  const others = node.replicas.slice(1).filter((r) => net.supervisor.isRunning(r.process));
  const cs = node.schemas.channel;
  const ss = node.schemas.signer;
  const c = new pg.Client({ connectionString: pgUrl });
  await c.connect();
  const nc = await natsConnect({ servers: natsUrl });
  const lines: string[] = [];
  let created = false;
  let stopped = false;
  try {
    // ------------------------------------------------------------ stop (its channels stand still)
    stopped = true;
    for (const r of [replica, ...others]) {
      const t = nowMs();
      await net.supervisor.stop(r.process);
      log(`restart: ${r.process} stopped in ${((nowMs() - t) / 1000).toFixed(1)} s (its leases released)`);
    }
    // ------------------------------------------------------------ the real channel, as stored now, and the rows
    const real = (
      await c.query<{ id: string; state: string; peer_node_id: string; signer_channel: number }>(
        `SELECT id, state, peer_node_id, signer_channel FROM ${q(cs)}.channels
          WHERE phase = 'normal' AND peer_node_id IS NOT NULL AND signer_channel IS NOT NULL
          ORDER BY created_at LIMIT 1`,
      )
    ).rows[0];
    if (real === undefined) throw new Error(`${node.name} has no channel in normal operation to clone`);
    const realState = deserializeState(real.state);
    const expectedAck = BigInt(ackFor(realState));
    log(
      `restart: cloning ${node.name}'s channel ${real.id} (commitment ${realState.localCommit?.number}, ` +
        `${real.state.length} bytes of state, ack ${expectedAck}) ${channels} times`,
    );

    const tRows = nowMs();
    // The signer's records of the real channel, once per clone: the startup check compares each
    // clone with its own signer channel (SignerStatuses).
    const signerCols = (await columns(c, ss, "channels")).filter(
      (x) => !["idx", "short_channel_id", "peer_node_id", "created_at"].includes(x),
    );
    const signerList = signerCols.map(q).join(", ");
    created = true;
    const idx = (
      await c.query<{ idx: number }>(
        `INSERT INTO ${q(ss)}.channels (${signerList})
         SELECT ${signerList} FROM ${q(ss)}.channels, generate_series(1, $2::integer)
          WHERE idx = $1 RETURNING idx`,
        [real.signer_channel, channels],
      )
    ).rows.map((x) => x.idx);
    if (idx.length !== channels) throw new Error(`cloned ${idx.length} signer channels, wanted ${channels}`);
    const chanCols = (await columns(c, cs, "channels")).filter(
      (x) =>
        ![
          "id",
          "peer_node_id",
          "signer_channel",
          "short_channel_id",
          "lease_owner",
          "lease_expires",
        ].includes(x),
    );
    const chanList = chanCols.map(q).join(", ");
    const ids = Array.from({ length: channels }, (_, i) => cloneId(i));
    const peers = Array.from({ length: channels }, (_, i) => clonePeer(i));
    await c.query(
      `INSERT INTO ${q(cs)}.channels (id, peer_node_id, signer_channel, ${chanList})
       SELECT n.id, n.peer, n.idx, ${chanCols.map((x) => `r.${q(x)}`).join(", ")}
         FROM ${q(cs)}.channels r,
              unnest($2::text[], $3::text[], $4::integer[]) AS n(id, peer, idx)
        WHERE r.id = $1`,
      [real.id, ids, peers, idx],
    );
    await c.query(`ANALYZE ${q(cs)}.channels`);
    const live = Number(
      (
        await c.query<{ n: string }>(
          `SELECT count(*)::text AS n FROM ${q(cs)}.channels WHERE phase NOT IN ('closed', 'failed')`,
        )
      ).rows[0]?.n,
    );
    const size = (
      await c.query<{ s: string }>(`SELECT pg_size_pretty(pg_total_relation_size($1::regclass)) AS s`, [
        `${q(cs)}.channels`,
      ])
    ).rows[0]?.s;
    log(
      `restart: ${channels} channels and their signer rows created in ${((nowMs() - tRows) / 1000).toFixed(1)} s ` +
        `(${live} live channels in ${cs}, table ${size})`,
    );

    // ------------------------------------------------------------ start and time it
    const sample = [
      real.peer_node_id,
      ...Array.from(
        { length: ACK_SAMPLE },
        (_, k) => peers[Math.floor((k * (channels - 1)) / (ACK_SAMPLE - 1))],
      ),
    ].filter((p): p is string => p !== undefined);
    const marks: Record<string, number> = {};
    const t0 = nowMs();
    const mark = (what: string): void => {
      if (marks[what] !== undefined) return;
      marks[what] = (nowMs() - t0) / 1000;
      log(`restart: ${what} after ${marks[what].toFixed(2)} s`);
    };
    let started = false;
    const starting = net.restart(node, "channel", replica.index).then((info) => {
      started = true;
      mark("ready line printed");
      return info;
    });
    const heldNow = async (): Promise<number> =>
      Number(
        (
          await c.query<{ n: string }>(
            `SELECT count(*)::text AS n FROM ${q(cs)}.channels
              WHERE phase NOT IN ('closed', 'failed') AND lease_owner = $1 AND lease_expires > now()`,
            [replica.replicaId],
          )
        ).rows[0]?.n,
      );
    let lastProgress = 0;
    let ackSeen = "acks not asked yet";
    const answered = new Set<string>();
    for (;;) {
      if (net.crashed !== undefined) throw new Error(net.crashed);
      const held = await heldNow();
      if (held >= live) mark(`all ${live} leases held`);
      if (started && marks["API answering"] === undefined)
        await replica.api.info().then(
          () => mark("API answering"),
          () => undefined,
        );
      if (held >= live && marks["API answering"] !== undefined) {
        // The real channel moves on (its peer reconnects): its ack is the one its state gives now.
        const realNow = (
          await c.query<{ state: string }>(`SELECT state FROM ${q(cs)}.channels WHERE id = $1`, [real.id])
        ).rows[0];
        const want = (p: string): bigint =>
          p === real.peer_node_id && realNow ? BigInt(ackFor(deserializeState(realNow.state))) : expectedAck;
        // Each sampled peer counts once answered right (a busy machine may answer some late).
        const asking = sample.filter((p) => !answered.has(p));
        const acks = await Promise.all(asking.map((p) => askAck(nc, node.prefix, p)));
        for (const [k, p] of asking.entries()) if (acks[k] === want(p)) answered.add(p);
        const unanswered = acks.filter((a) => a === undefined).length;
        ackSeen =
          `${answered.size}/${sample.length} sampled acks answered right (${unanswered} unanswered this time)` +
          (answered.has(real.peer_node_id) ? "" : `; the real peer's: want ${want(real.peer_node_id)}`);
        if (answered.size === sample.length) {
          mark(`acks answered (the real peer and ${sample.length - 1} cloned peers)`);
          break;
        }
      }
      if (nowMs() - lastProgress > 1000) {
        lastProgress = nowMs();
        log(`restart: ${((nowMs() - t0) / 1000).toFixed(1)} s: ${held}/${live} leases held; ${ackSeen}`);
      }
      if (nowMs() - t0 > 180_000)
        throw new Error(`not ready after 180 s (${held}/${live} leases held; ${ackSeen})`);
      await sleep(50);
    }
    await starting;
    const readySeconds = (nowMs() - t0) / 1000;

    // ------------------------------------------------------------ every ack, once
    const tSweep = nowMs();
    let next = 0;
    let right = 0;
    let wrong = 0;
    await Promise.all(
      Array.from({ length: ACKS_AT_ONCE }, async () => {
        while (next < peers.length) {
          const p = peers[next++] as string;
          if ((await askAck(nc, node.prefix, p)) === expectedAck) right++;
          else wrong++;
        }
      }),
    );
    const sweepS = (nowMs() - tSweep) / 1000;
    {
      const st = (
        await c.query<{ state: string }>(`SELECT state FROM ${q(cs)}.channels WHERE id = $1`, [real.id])
      ).rows[0];
      const got = await askAck(nc, node.prefix, real.peer_node_id);
      log(
        `restart: the real peer's ack now ${got ?? "unanswered"} (its state gives ${st ? ackFor(deserializeState(st.state)) : "?"})`,
      );
    }
    log(
      `restart: every cloned peer's ack asked: ${right} right, ${wrong} wrong or unanswered, ${sweepS.toFixed(1)} s`,
    );

    lines.push(
      `restart: ${channels} stored channels (+ the real ones: ${live} live): ready in ${readySeconds.toFixed(2)} s` +
        ` (aim ≤ ${AIM_SECONDS} s${readySeconds <= AIM_SECONDS ? ", met" : ", NOT met"})`,
      `  from the restart: ${Object.entries(marks)
        .map(([k, v]) => `${k} ${v.toFixed(2)} s`)
        .join("; ")}`,
      `  then every cloned peer's ack asked once (${ACKS_AT_ONCE} at a time): ${right}/${channels} answered right in ${sweepS.toFixed(1)} s` +
        ` (${Math.round(channels / sweepS)}/s)`,
    );
    return { channels, readySeconds, lines };
  } finally {
    if (created) {
      // The clones go: stopped first (it would otherwise see their leases vanish), then started on
      // the real channels alone.
      try {
        const t = nowMs();
        await net.supervisor.stop(replica.process);
        await c.query(`DELETE FROM ${q(cs)}.outbox WHERE channel_id LIKE $1`, [`${CLONE_PREFIX}%`]);
        const gone = await c.query<{ signer_channel: number }>(
          `DELETE FROM ${q(cs)}.channels WHERE id LIKE $1 RETURNING signer_channel`,
          [`${CLONE_PREFIX}%`],
        );
        await c.query(`DELETE FROM ${q(ss)}.channels WHERE idx = ANY($1::integer[])`, [
          gone.rows.map((x) => x.signer_channel),
        ]);
        await net.restart(node, "channel", replica.index);
        for (const r of others) await net.restart(node, "channel", r.index);
        log(
          `restart: ${gone.rowCount} cloned channels removed, ${node.name}'s channel service running again ` +
            `(${((nowMs() - t) / 1000).toFixed(1)} s)`,
        );
      } catch (e) {
        log(`restart: could not remove the cloned channels (the schema goes with the run): ${errText(e)}`);
      }
    }
    if (stopped && !created)
      for (const r of [replica, ...others])
        await net
          .restart(node, "channel", r.index)
          .catch((e: unknown) => log(`restart: could not start ${r.process} again: ${errText(e)}`));
    await nc.close().catch(() => undefined);
    await c.end().catch(() => undefined);
  }
}
