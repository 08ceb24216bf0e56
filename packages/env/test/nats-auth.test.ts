/** NATS credentials against a real nats-server started with authentication (Debian's nats-server). */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { connect } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EnvReader, natsConnectOptions } from "../src/index.js";

const NATS_SERVER = process.env["NATS_SERVER_BIN"] ?? "/usr/sbin/nats-server";

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => (typeof a === "object" && a ? resolve(a.port) : reject(new Error("no port"))));
    });
  });

async function startServer(args: string[]): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(NATS_SERVER, ["-a", "127.0.0.1", "-p", String(port), ...args], { stdio: "ignore" });
  const url = `nats://127.0.0.1:${port}`;
  child.on("error", () => undefined);
  // Ready once it accepts a connection with the right credentials (or refuses the wrong ones).
  for (let i = 0; i < 100; i++) {
    try {
      const nc = await connect({
        servers: url,
        timeout: 200,
        reconnect: false,
        user: "probe",
        pass: "probe",
      });
      await nc.close();
      break;
    } catch (e) {
      if (/authorization/i.test(String(e))) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { url, child };
}

const servers: ChildProcess[] = [];
let userServer: string;
let tokenServer: string;
beforeAll(async () => {
  const u = await startServer(["--user", "ln", "--pass", "s3cret-pass"]);
  const t = await startServer(["--auth", "s3cret-token"]);
  servers.push(u.child, t.child);
  [userServer, tokenServer] = [u.url, t.url];
}, 20_000);
afterAll(() => {
  for (const s of servers) s.kill("SIGTERM");
});

const settings = (env: Record<string, string>) => new EnvReader(env).nats();

describe("NATS credentials from the environment, against nats-server", () => {
  it("a user and password: connects; the wrong password is refused", async () => {
    const nc = await connect(
      natsConnectOptions(
        settings({ NATS_URL: userServer, NATS_USER: "ln", NATS_PASSWORD: "s3cret-pass" }),
        "t",
      ),
    );
    await nc.flush();
    await nc.close();
    await expect(
      connect({
        ...natsConnectOptions(
          settings({ NATS_URL: userServer, NATS_USER: "ln", NATS_PASSWORD: "wrong" }),
          "t",
        ),
        reconnect: false,
      }),
    ).rejects.toThrow(/authorization/i);
  });

  it("a token: connects; none at all is refused", async () => {
    const nc = await connect(
      natsConnectOptions(settings({ NATS_URL: tokenServer, NATS_TOKEN: "s3cret-token" }), "t"),
    );
    await nc.flush();
    await nc.close();
    await expect(
      connect({ ...natsConnectOptions(settings({ NATS_URL: tokenServer }), "t"), reconnect: false }),
    ).rejects.toThrow(/authorization/i);
  });
});
