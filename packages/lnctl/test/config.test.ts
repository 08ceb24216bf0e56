import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, defaultConfigPath, readFileIfExists, resolveSettings } from "../src/config.js";
import { fakeFetch, lnctl } from "./helpers.js";

const files = (m: Record<string, string>) => (p: string) => m[p];

describe("config precedence: flag > env > file", () => {
  const HOME = "/home/op";
  const DEFAULT = "/home/op/.config/lnctl/config.json";
  const file = JSON.stringify({ url: "http://file:1", token: "file-token" });

  it("uses the default file when nothing else is set", () => {
    expect(defaultConfigPath({ HOME })).toBe(DEFAULT);
    const s = resolveSettings({}, { HOME }, files({ [DEFAULT]: file }));
    expect(s).toEqual({
      url: "http://file:1",
      token: "file-token",
      from: { url: "file", token: "file" },
      configPath: DEFAULT,
    });
  });

  it("env beats the file, flags beat env, each setting on its own", () => {
    const env = { HOME, LNCTL_URL: "http://env:1", LNCTL_TOKEN: "env-token" };
    expect(resolveSettings({}, env, files({ [DEFAULT]: file }))).toMatchObject({
      url: "http://env:1",
      token: "env-token",
      from: { url: "env", token: "env" },
    });
    expect(resolveSettings({ url: "http://flag:1", token: "flag-token" }, env, files({}))).toMatchObject({
      url: "http://flag:1",
      token: "flag-token",
      from: { url: "flag", token: "flag" },
    });
    // Mixed: URL from the flag, token from the file.
    expect(resolveSettings({ url: "http://flag:1" }, { HOME }, files({ [DEFAULT]: file }))).toMatchObject({
      url: "http://flag:1",
      token: "file-token",
      from: { url: "flag", token: "file" },
    });
    // Mixed: token from env, URL from the file.
    expect(resolveSettings({}, { HOME, LNCTL_TOKEN: "env-token" }, files({ [DEFAULT]: file }))).toMatchObject(
      {
        url: "http://file:1",
        from: { url: "file", token: "env" },
      },
    );
    // Empty env values count as unset.
    expect(resolveSettings({}, { HOME, LNCTL_URL: "" }, files({ [DEFAULT]: file })).url).toBe(
      "http://file:1",
    );
  });

  it("the config path: --config > LNCTL_CONFIG > default", () => {
    const fs = files({
      "/flag.json": JSON.stringify({ url: "http://a:1", token: "a" }),
      "/env.json": JSON.stringify({ url: "http://b:1", token: "b" }),
      [DEFAULT]: file,
    });
    expect(resolveSettings({ config: "/flag.json" }, { HOME, LNCTL_CONFIG: "/env.json" }, fs).url).toBe(
      "http://a:1",
    );
    expect(resolveSettings({}, { HOME, LNCTL_CONFIG: "/env.json" }, fs).url).toBe("http://b:1");
  });

  it("a named config file must exist; the default one may be missing", () => {
    expect(() =>
      resolveSettings(
        { config: "/nope.json" },
        { HOME, LNCTL_URL: "http://x:1", LNCTL_TOKEN: "t" },
        files({}),
      ),
    ).toThrow(/config file \/nope.json does not exist \(named by --config\)/);
    expect(() => resolveSettings({}, { HOME, LNCTL_CONFIG: "/nope.json" }, files({}))).toThrow(
      /named by LNCTL_CONFIG/,
    );
    expect(
      resolveSettings({}, { HOME, LNCTL_URL: "http://x:1", LNCTL_TOKEN: "t" }, files({})).configPath,
    ).toBeUndefined();
  });

  it("explains what is missing or malformed, without showing the token", () => {
    const bad = (
      flags: Parameters<typeof resolveSettings>[0],
      env: Record<string, string>,
      fs = files({}),
    ) => {
      try {
        resolveSettings(flags, { HOME, ...env }, fs);
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as Error).message;
      }
      throw new Error("expected a ConfigError");
    };
    expect(bad({}, { LNCTL_TOKEN: "t" })).toMatch(
      /no API URL: pass --url, set LNCTL_URL, or put "url" in \/home\/op/,
    );
    expect(bad({}, { LNCTL_URL: "http://x:1" })).toMatch(/no API token: pass --token, set LNCTL_TOKEN/);
    expect(bad({ url: "ftp://x", token: "t" }, {})).toMatch(/not an http\(s\) URL/);
    const secret = "sec ret";
    const m = bad({ url: "http://x:1", token: secret }, {});
    expect(m).toMatch(/token from the command line is malformed/);
    expect(m).not.toContain(secret);
    expect(bad({}, {}, files({ [DEFAULT]: "{not json" }))).toMatch(/not valid JSON/);
    expect(bad({}, {}, files({ [DEFAULT]: "[]" }))).toMatch(/must hold a JSON object/);
    expect(bad({}, {}, files({ [DEFAULT]: JSON.stringify({ url: 5 }) }))).toMatch(
      /"url" must be a non-empty string/,
    );
  });

  it("reads a real file, and treats a missing one as absent", () => {
    const dir = mkdtempSync(join(tmpdir(), "lnctl-"));
    const p = join(dir, "config.json");
    writeFileSync(p, file);
    expect(readFileIfExists(p)).toBe(file);
    expect(readFileIfExists(join(dir, "missing.json"))).toBeUndefined();
    expect(resolveSettings({}, { HOME: dir, LNCTL_CONFIG: p }).token).toBe("file-token");
  });

  it("run() sends the token chosen by precedence and never prints it", async () => {
    const f = fakeFetch(200, { address: "bcrt1qaddr" });
    const r = await lnctl(
      ["wallet", "address", "--token", "flag-token"],
      { HOME, LNCTL_TOKEN: "env-token" },
      { fetch: f.fetch, readFile: files({ [DEFAULT]: file }) },
    );
    expect(r).toEqual({ code: 0, stdout: "bcrt1qaddr\n", stderr: "" });
    expect(f.calls[0]?.url).toBe("http://file:1/v1/wallet/address");
    expect(f.calls[0]?.init.method).toBe("POST");
    expect(new Headers(f.calls[0]?.init.headers).get("authorization")).toBe("Bearer flag-token");
    const missing = await lnctl(["info"], { HOME }, { readFile: files({}) });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no API URL/);
  });
});
