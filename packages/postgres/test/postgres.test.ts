import { randomBytes } from "node:crypto";
import { inTransaction, migrate, quoteSchema, SchemaNameError, type Migration } from "@ln/postgres";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { testDatabaseUrl, testDatabaseUrlAs } from "@ln/testkit";

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 8 });
const schema = `lnpg_test_${randomBytes(6).toString("hex")}`;
afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

const migrations: Migration[] = [
  { version: 1, sql: (s) => `CREATE TABLE ${s}.things (id integer PRIMARY KEY)` },
  { version: 2, sql: (s) => `ALTER TABLE ${s}.things ADD COLUMN name text` },
];

describe("@ln/postgres on a real server", () => {
  it("applies each migration once, even with replicas migrating at the same time", async () => {
    const runs = await Promise.all(Array.from({ length: 5 }, () => migrate(pool, schema, migrations)));
    expect(runs.flat().sort()).toEqual([1, 2]);
    expect(
      await migrate(pool, schema, [
        ...migrations,
        { version: 3, sql: (s) => `CREATE INDEX ON ${s}.things (name)` },
      ]),
    ).toEqual([3]);
  });

  it("migrates as a role that owns its schema but may not create schemas (least privilege)", async () => {
    const role = `lnpg_role_${randomBytes(6).toString("hex")}`;
    const own = `${role}_schema`;
    // A password, for a Postgres that asks for one (an embedded one does; trust ignores it).
    const password = randomBytes(12).toString("hex");
    await pool.query(`CREATE ROLE "${role}" LOGIN PASSWORD '${password}'`);
    await pool.query(`CREATE SCHEMA "${own}" AUTHORIZATION "${role}"`);
    const asRole = new pg.Pool({ connectionString: testDatabaseUrlAs(role, password), max: 2 });
    try {
      // The role really lacks CREATE on the database.
      await expect(asRole.query(`CREATE SCHEMA "${own}_other"`)).rejects.toThrow(/permission denied/);
      expect(await migrate(asRole, own, migrations)).toEqual([1, 2]);
      expect(await migrate(asRole, own, migrations)).toEqual([]);
    } finally {
      await asRole.end();
      await pool.query(`DROP SCHEMA IF EXISTS "${own}" CASCADE`);
      await pool.query(`DROP ROLE IF EXISTS "${role}"`);
    }
  });

  it("commits what returns and rolls back what throws", async () => {
    await inTransaction(pool, (c) => c.query(`INSERT INTO "${schema}".things (id) VALUES (1)`));
    await expect(
      inTransaction(pool, async (c) => {
        await c.query(`INSERT INTO "${schema}".things (id) VALUES (2)`);
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect((await pool.query(`SELECT id FROM "${schema}".things ORDER BY id`)).rows).toEqual([{ id: 1 }]);
  });

  it("refuses schema names that are not plain identifiers", () => {
    expect(quoteSchema("channel")).toBe('"channel"');
    for (const bad of ['x"; DROP TABLE y; --', "Upper", "", "a".repeat(64), "pg_catalog"])
      expect(() => quoteSchema(bad)).toThrow(SchemaNameError);
  });
});
