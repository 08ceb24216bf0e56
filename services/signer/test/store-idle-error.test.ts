/**
 * The signer's pool outlives a Postgres restart: an idle pooled connection ended by the server
 * (here pg_terminate_backend, as a restart's shutdown does) is reported to the listener instead of
 * an unhandled "error" event that ends the process (found by the chaos run: the signer exited on
 * a Postgres restart), and the next query reconnects.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { expect, it } from "vitest";
import { SignerStore } from "../src/store.js";
import { DATABASE_URL } from "./helpers.js";

it("an idle connection ended by Postgres is reported, and the store works on", async () => {
  const schema = `signer_idle_${randomBytes(6).toString("hex")}`;
  let heard: (e: Error) => void = () => undefined;
  const idleError = new Promise<Error>((r) => (heard = r));
  // Its connections named, so only they are ended (other tests share the database).
  const store = SignerStore.connect(`${DATABASE_URL}?application_name=${schema}`, schema, (e) => heard(e));
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  try {
    await store.migrate(); // leaves idle connections in the pool
    await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", [
      schema,
    ]);
    const e = await idleError;
    expect(e.message).toMatch(/terminat/);
    expect(await store.newChannel()).toBeTypeOf("number");
  } finally {
    await store.close();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  }
});
