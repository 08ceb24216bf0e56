/**
 * Where the tests find Postgres and NATS. The test run's global setup (test/global-setup.ts) puts
 * the URLs it chose in DATABASE_URL and NATS_URL before any test file loads: the configured ones
 * when they answer, else an embedded Postgres / a nats-server it started. A test file run some
 * other way falls back to the local defaults.
 */

export const DEFAULT_TEST_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test";
export const DEFAULT_TEST_NATS_URL = "nats://127.0.0.1:4222";

const nonEmpty = (v: string | undefined): string | undefined => (v === undefined || v === "" ? undefined : v);

/** The Postgres URL for tests: a user that may create schemas and roles, with its password if any. */
export function testDatabaseUrl(): string {
  return nonEmpty(process.env["DATABASE_URL"]) ?? DEFAULT_TEST_DATABASE_URL;
}

/** The NATS (JetStream) URL for tests, nats://HOST:PORT. */
export function testNatsUrl(): string {
  return nonEmpty(process.env["NATS_URL"]) ?? DEFAULT_TEST_NATS_URL;
}

/** The test database's URL logging in as another user (same host, port and database). */
export function testDatabaseUrlAs(user: string, password: string): string {
  const u = new URL(testDatabaseUrl());
  u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(password);
  return u.toString();
}
