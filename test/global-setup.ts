/**
 * Vitest global setup: the Postgres and NATS (JetStream) the tests use, found or started once for
 * the whole run, as the lab does (test/lab/infra.ts). DATABASE_URL / NATS_URL (or the local
 * defaults) are used unchanged when they answer; otherwise an embedded Postgres and a nats-server
 * are started here and stopped at teardown. The chosen URLs go into process.env before any test
 * worker starts, and vitest forks the workers with this process's environment, so every test
 * (and every service a test spawns with the env it reads through @ln/testkit) finds them.
 */
import { ensureNats, ensurePostgres, type InfraHandle } from "./lab/infra.js";

const log = (line: string): void => console.log(`[test infra] ${line}`);

export default async function setup(): Promise<() => Promise<void>> {
  const started: InfraHandle[] = [];
  const teardown = async (): Promise<void> => {
    for (const h of started.reverse()) await h.stop();
  };
  try {
    const pg = await ensurePostgres({ log });
    started.push(pg);
    const nats = await ensureNats({ log });
    started.push(nats);
    process.env["DATABASE_URL"] = pg.url;
    process.env["NATS_URL"] = nats.url;
    if (pg.source !== "existing") log(`started its own Postgres for this run (${pg.source})`);
    if (nats.source !== "existing") log(`started its own nats-server for this run (${nats.source})`);
  } catch (e) {
    await teardown();
    throw e;
  }
  return teardown;
}
