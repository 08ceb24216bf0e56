import { describe, expect, it } from "vitest";
import { EnvReader, formatProblems, natsConnectOptions, parseHostPort } from "../src/index.js";

describe("parseHostPort", () => {
  it("reads host:port and [v6]:port, port 0 only when allowed", () => {
    expect(parseHostPort("127.0.0.1:0", true)).toEqual({ host: "127.0.0.1", port: 0 });
    expect(parseHostPort("127.0.0.1:0", false)).toBeUndefined();
    expect(parseHostPort("[::]:9735", false)).toEqual({ host: "::", port: 9735 });
    expect(parseHostPort("signer:65535", false)).toEqual({ host: "signer", port: 65535 });
    for (const bad of ["9735", ":9735", "host:65536", "::1:9735", "a b:1", "host:", "[x]:1", "h:123456"])
      expect(parseHostPort(bad, true)).toBeUndefined();
  });
});

describe("EnvReader", () => {
  it("get trims and treats empty as unset; need reports what to set", () => {
    const r = new EnvReader({ A: "  x ", B: "   ", C: "" });
    expect(r.get("A")).toBe("x");
    expect(r.get("B")).toBeUndefined();
    expect(r.get("C")).toBeUndefined();
    expect(r.get("D")).toBeUndefined();
    expect(r.need("A", "an a")).toBe("x");
    expect(r.need("B", "a b")).toBe("");
    expect(r.need("D", "a d")).toBe("");
    expect(r.problems).toEqual(["B is not set (a b)", "D is not set (a d)"]);
  });

  it("int: the default when unset, bounded whole numbers, what in the message when given", () => {
    const r = new EnvReader({ OK: "42", LOW: "0", SCI: "1e3", NEG: "-1", FRAC: "1.5" });
    expect(r.int("UNSET", 7, 1, 100)).toBe(7);
    expect(r.int("OK", 7, 1, 100)).toBe(42);
    expect(r.int("LOW", 7, 1, 100, "things")).toBe(7);
    expect(r.int("SCI", 7, 1, 10_000)).toBe(7);
    expect(r.int("NEG", 7, 0, 100)).toBe(7);
    expect(r.int("FRAC", 7, 0, 100)).toBe(7);
    expect(r.problems).toEqual([
      'LOW must be a whole number from 1 to 100 (things), got "0"',
      'SCI must be a whole number from 1 to 10000, got "1e3"',
      'NEG must be a whole number from 0 to 100, got "-1"',
      'FRAC must be a whole number from 0 to 100, got "1.5"',
    ]);
  });

  it("hostPort: required or optional, port 0 on request, a hint in the message", () => {
    const r = new EnvReader({ L: "0.0.0.0:0", V6: "[::1]:80", BAD: "8080", ZERO: "h:0" });
    expect(r.hostPort("L", "where", { allowPortZero: true })).toEqual({ host: "0.0.0.0", port: 0 });
    expect(r.hostPort("V6", "where")).toEqual({ host: "::1", port: 80 });
    expect(r.hostPort("UNSET", "where to listen")).toBeUndefined();
    expect(r.hostPort("UNSET", "where", { required: false })).toBeUndefined();
    expect(r.hostPort("BAD", "where", { hint: "(e.g. h:1)" })).toBeUndefined();
    expect(r.hostPort("ZERO", "where")).toBeUndefined();
    expect(r.problems).toEqual([
      "UNSET is not set (where to listen)",
      'BAD must be host:port (e.g. h:1), got "8080"',
      'ZERO must be host:port, got "h:0"',
    ]);
  });

  it("opsListen: optional, port 0 allowed, names the endpoints in the message", () => {
    const r = new EnvReader({ X_OPS_LISTEN: "127.0.0.1:0", Y_OPS_LISTEN: ":9100" });
    expect(r.opsListen("NONE_OPS_LISTEN", "0.0.0.0:9100")).toBeUndefined();
    expect(r.opsListen("X_OPS_LISTEN", "0.0.0.0:9100")).toEqual({ host: "127.0.0.1", port: 0 });
    expect(r.opsListen("Y_OPS_LISTEN", "0.0.0.0:9100")).toBeUndefined();
    expect(r.problems).toEqual([
      'Y_OPS_LISTEN must be host:port for the HTTP /metrics, /healthz and /readyz (e.g. 0.0.0.0:9100; port 0: any free port), got ":9100"',
    ]);
  });

  it("subjectPrefix: required dot-separated NATS tokens", () => {
    const r = new EnvReader({ GOOD: "lab.a-1_b", BAD: "a..b", WILD: "a.*" });
    expect(r.subjectPrefix("GOOD", "a prefix", "tokens")).toBe("lab.a-1_b");
    expect(r.subjectPrefix("BAD", "a prefix", "NATS tokens")).toBe("a..b");
    expect(r.subjectPrefix("WILD", "a prefix", "tokens")).toBe("a.*");
    expect(r.subjectPrefix("UNSET", "a prefix", "tokens")).toBe("");
    expect(r.problems).toEqual([
      'BAD must be dot-separated NATS tokens, got "a..b"',
      'WILD must be dot-separated tokens, got "a.*"',
      "UNSET is not set (a prefix)",
    ]);
  });

  it("schemaName: a default, a plain Postgres name, optionally not pg_", () => {
    const r = new EnvReader({ S: "pg_x", BAD: "x; drop" });
    expect(r.schemaName("UNSET", "signer")).toBe("signer");
    expect(r.schemaName("S", "d")).toBe("pg_x");
    expect(r.problems).toEqual([]);
    expect(r.schemaName("S", "d", { noPgPrefix: true })).toBe("pg_x");
    expect(r.schemaName("BAD", "d")).toBe("x; drop");
    expect(r.problems).toEqual([
      'S must match ^[a-z_][a-z0-9_]{0,62}$ and not start with pg_, got "pg_x"',
      'BAD must match ^[a-z_][a-z0-9_]{0,62}$, got "x; drop"',
    ]);
  });

  it("formatProblems: a title line, then one indented line per problem", () => {
    const r = new EnvReader({});
    r.need("A", "a");
    r.problem("B is wrong");
    expect(formatProblems("svc configuration", r.problems)).toBe(
      "svc configuration:\n  A is not set (a)\n  B is wrong",
    );
  });
});

describe("NATS settings", () => {
  const nats = (env: Record<string, string>) => {
    const r = new EnvReader(env);
    return { settings: r.nats(), problems: r.problems };
  };
  it("defaults to the local server without credentials", () => {
    expect(nats({})).toEqual({
      settings: { servers: "nats://127.0.0.1:4222", auth: { kind: "none" } },
      problems: [],
    });
  });
  it("takes one kind of credentials", () => {
    expect(nats({ NATS_URL: "nats://n:4222", NATS_CREDS_FILE: "/etc/nats/ln.creds" }).settings).toEqual({
      servers: "nats://n:4222",
      auth: { kind: "creds", file: "/etc/nats/ln.creds" },
    });
    expect(nats({ NATS_USER: "ln", NATS_PASSWORD: "pw" }).settings.auth).toEqual({
      kind: "user",
      user: "ln",
      pass: "pw",
    });
    expect(nats({ NATS_TOKEN: "t0k" }).settings.auth).toEqual({ kind: "token", token: "t0k" });
  });
  it("reports two kinds at once, or a user without a password, and never echoes a secret", () => {
    const two = nats({ NATS_TOKEN: "s3cret-token", NATS_CREDS_FILE: "/x.creds" });
    expect(two.problems).toEqual(["NATS credentials: set only one of NATS_CREDS_FILE, NATS_TOKEN"]);
    const half = nats({ NATS_USER: "ln" });
    expect(half.problems).toEqual(["NATS_USER and NATS_PASSWORD go together: set both, or neither"]);
    expect(JSON.stringify([two.problems, half.problems])).not.toContain("s3cret");
  });
  it("gives nats.js its options: user and password, a token, or an authenticator from the creds file", async () => {
    expect(
      natsConnectOptions({ servers: "nats://n", auth: { kind: "user", user: "u", pass: "p" } }, "x"),
    ).toEqual({
      servers: "nats://n",
      name: "x",
      user: "u",
      pass: "p",
    });
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { tmpdir } = await import("node:os");
    const file = join(mkdtempSync(join(tmpdir(), "creds-")), "ln.creds");
    writeFileSync(
      file,
      "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.x\n------END NATS USER JWT------\n",
    );
    const o = natsConnectOptions({ servers: "nats://n", auth: { kind: "creds", file } }, "x");
    expect(typeof o.authenticator).toBe("function");
  });
});
