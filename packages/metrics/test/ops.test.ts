import { afterAll, describe, expect, it } from "vitest";
import { Counter, newRegistry, serveOps, urlOf, type OpsServer } from "../src/index.js";

const servers: OpsServer[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

describe("newRegistry", () => {
  it("has the default process metrics, each labelled with the service", async () => {
    const r = newRegistry("testsvc");
    const text = await r.metrics();
    expect(text).toMatch(/^process_cpu_user_seconds_total\{service="testsvc"\} /m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds\{service="testsvc"\} /m);
  });
});

describe("urlOf", () => {
  it("names a reachable URL for wildcard hosts", () => {
    expect(urlOf("0.0.0.0", 9)).toBe("http://127.0.0.1:9");
    expect(urlOf("::", 9)).toBe("http://[::1]:9");
    expect(urlOf("10.0.0.1", 9)).toBe("http://10.0.0.1:9");
  });
});

describe("serveOps", () => {
  it("serves /metrics, /healthz, /readyz (flipping with ready()) and 404 elsewhere", async () => {
    const registry = newRegistry("opstest");
    const hits = new Counter({
      name: "opstest_things_total",
      help: "Things.",
      labelNames: ["kind"] as const,
      registers: [registry],
    });
    let ready: boolean | string = "still starting";
    const ops = await serveOps({
      listen: { host: "127.0.0.1", port: 0 },
      registry,
      ready: () => Promise.resolve(ready),
    });
    servers.push(ops);
    expect(ops.port).toBeGreaterThan(0);
    expect(ops.url).toBe(`http://127.0.0.1:${ops.port}`);

    hits.inc({ kind: "a" });
    let m = await fetch(`${ops.url}/metrics`);
    expect(m.status).toBe(200);
    expect(m.headers.get("content-type")).toContain("text/plain");
    let text = await m.text();
    expect(text).toContain("# TYPE opstest_things_total counter");
    expect(text).toContain('opstest_things_total{kind="a",service="opstest"} 1');
    hits.inc({ kind: "a" }, 2);
    m = await fetch(`${ops.url}/metrics`);
    text = await m.text();
    expect(text).toContain('opstest_things_total{kind="a",service="opstest"} 3');

    const h = await fetch(`${ops.url}/healthz`);
    expect(h.status).toBe(200);
    expect(await h.text()).toBe("ok\n");

    let r = await fetch(`${ops.url}/readyz`);
    expect(r.status).toBe(503);
    expect(await r.text()).toContain("still starting");
    ready = false;
    r = await fetch(`${ops.url}/readyz`);
    expect(r.status).toBe(503);
    expect(await r.text()).toContain("not ready");
    ready = true;
    r = await fetch(`${ops.url}/readyz`);
    expect(r.status).toBe(200);
    expect(await r.text()).toBe("ready\n");

    const n = await fetch(`${ops.url}/nope`);
    expect(n.status).toBe(404);
    await n.text();
    const p = await fetch(`${ops.url}/metrics`, { method: "POST" });
    expect(p.status).toBe(405);
    await p.text();
  });

  it("a failing readiness check is 503 with its reason; a failing collect is 500", async () => {
    const registry = newRegistry("opstest2");
    const logs: string[] = [];
    new Counter({
      name: "opstest2_broken_total",
      help: "Collect fails.",
      registers: [registry],
      collect() {
        throw new Error("boom");
      },
    });
    const ops = await serveOps({
      listen: { host: "127.0.0.1", port: 0 },
      registry,
      ready: () => Promise.reject(new Error("db down")),
      log: {
        info: (m) => logs.push(`info ${m}`),
        warn: (m) => logs.push(`warn ${m}`),
        error: (m) => logs.push(`error ${m}`),
      },
    });
    servers.push(ops);
    const r = await fetch(`${ops.url}/readyz`);
    expect(r.status).toBe(503);
    expect(await r.text()).toContain("db down");
    const m = await fetch(`${ops.url}/metrics`);
    expect(m.status).toBe(500);
    await m.text();
    expect(logs.join("\n")).toMatch(/^warn ops: \/metrics failed: .*boom/m);
  });

  it("close() stops it and a busy port is an error", async () => {
    const registry = newRegistry("opstest3");
    const ops = await serveOps({ listen: { host: "127.0.0.1", port: 0 }, registry });
    await expect(serveOps({ listen: { host: "127.0.0.1", port: ops.port }, registry })).rejects.toThrow(
      /EADDRINUSE/,
    );
    await ops.close();
    await expect(fetch(`${ops.url}/healthz`)).rejects.toThrow();
  });
});
