import type pg from "pg";

/**
 * What every service does with its own Postgres schema (DESIGN.md 1: each service owns its
 * tables): versioned migrations applied once, and work done in one transaction.
 */
export interface Migration {
  readonly version: number;
  /** The statements, given the quoted schema name to qualify tables with. */
  readonly sql: (schema: string) => string;
}

export class SchemaNameError extends Error {
  override readonly name = "SchemaNameError";
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** A schema name checked and quoted for SQL (names come from configuration, never from peers). */
export function quoteSchema(name: string): string {
  if (!SCHEMA_NAME.test(name) || name.startsWith("pg_"))
    throw new SchemaNameError(
      `schema name ${JSON.stringify(name)}: use lowercase letters, digits and _ (at most 63), not starting with pg_ (reserved)`,
    );
  return `"${name}"`;
}

/**
 * Creates the schema if it is missing and applies, in version order, the migrations it has not seen, recording
 * each in `schema_migrations`. Replicas starting together are serialised by an advisory lock.
 * Returns the versions applied now.
 */
export async function migrate(
  pool: pg.Pool,
  schema: string,
  migrations: readonly Migration[],
): Promise<number[]> {
  const s = quoteSchema(schema);
  return inTransaction(pool, async (c) => {
    await c.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`ln-migrate:${schema}`]);
    // Only when missing: a service's own role may own its schema without CREATE on the database
    // (an operator creates both at bootstrap), and CREATE SCHEMA IF NOT EXISTS needs that right.
    const exists = await c.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [schema]);
    if (exists.rowCount === 0) await c.query(`CREATE SCHEMA ${s}`);
    await c.query(
      `CREATE TABLE IF NOT EXISTS ${s}.schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const done = new Set(
      (await c.query<{ version: number }>(`SELECT version FROM ${s}.schema_migrations`)).rows.map(
        (r) => r.version,
      ),
    );
    const applied: number[] = [];
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (done.has(m.version)) continue;
      await c.query(m.sql(s));
      await c.query(`INSERT INTO ${s}.schema_migrations (version) VALUES ($1)`, [m.version]);
      applied.push(m.version);
    }
    return applied;
  });
}

/**
 * Runs `fn` with a client checked out of `pool`, and releases it. While checked out, a client has no
 * listener of the pool's: one that loses its connection (a Postgres restart, pg_terminate_backend)
 * would emit an 'error' event nobody hears, which ends the process. Here its error is recorded
 * instead: its queries reject (node-postgres rejects the active one and refuses later ones), and
 * the client is released with the error, so the pool destroys it rather than lending it again.
 */
export async function withClient<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  let lost: Error | undefined;
  const onError = (e: Error): void => {
    lost ??= e;
  };
  c.on("error", onError);
  try {
    return await fn(c);
  } finally {
    c.off("error", onError);
    // Released, it has the pool's idle listener again: a later error (its socket's end) is the pool's.
    c.release(lost);
  }
}

/**
 * Runs `fn` in one transaction: committed if it returns, rolled back if it throws. `first`: a
 * statement without parameters sent with the BEGIN, in the same round trip (it must not come
 * from input: it is sent as it is). A connection lost meanwhile rejects it (see withClient).
 */
export function inTransaction<T>(
  pool: pg.Pool,
  fn: (c: pg.PoolClient) => Promise<T>,
  first?: string,
): Promise<T> {
  return withClient(pool, async (c) => {
    try {
      // In the try: BEGIN may succeed and `first` fail, leaving a transaction to roll back.
      await c.query(first === undefined ? "BEGIN" : `BEGIN; ${first}`);
      const result = await fn(c);
      await c.query("COMMIT");
      return result;
    } catch (e) {
      await c.query("ROLLBACK").catch(() => undefined);
      throw e;
    }
  });
}
