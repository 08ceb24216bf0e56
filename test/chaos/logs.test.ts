/** The log invariant of the chaos checker on hand-written process logs (no processes needed). */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { logsClean } from "./invariants.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function net(files: Record<string, string[]>): { dir: string; crashed: undefined } {
  const dir = mkdtempSync(join(tmpdir(), "chaos-logs-"));
  dirs.push(dir);
  mkdirSync(join(dir, "logs"));
  for (const [name, lines] of Object.entries(files))
    writeFileSync(join(dir, "logs", name), lines.join("\n") + "\n");
  return { dir, crashed: undefined };
}

const start = "--- 2026-12-03T21:44:45.386Z start services/channel/src/main.ts (pid 815) ---";
const refusal = JSON.stringify({
  level: "error",
  service: "channel",
  msg: "failed to start: error: the database system is shutting down\n    at withClient",
});
const exit1 = "--- 2026-12-03T21:44:56.935Z exit code 1 ---";

it("a logged refusal to start while Postgres was down, then exit 1, is counted, not a violation", () => {
  const r = logsClean(net({ "B.channel.log": [start, refusal, exit1, start] }));
  expect(r.violations).toEqual([]);
  expect(r.ok).toBe(true);
  expect(r.figure).toContain(
    "2 process starts, 0 SIGKILLed, 1 refused to start while Postgres or NATS was down",
  );
});

it("an exit 1 after any other line, or after a refusal for another reason, is a violation", () => {
  const other = JSON.stringify({
    level: "error",
    service: "channel",
    msg: "failed to start: CHANNEL_ADMIN_TOKEN is missing",
  });
  const info = JSON.stringify({ level: "info", service: "channel", msg: "started" });
  const r = logsClean(net({ "A.channel.log": [start, other, exit1], "C.signer.log": [start, info, exit1] }));
  expect(r.ok).toBe(false);
  expect(r.violations).toEqual([
    "A.channel.log:3: exited on its own: code 1",
    "C.signer.log:3: exited on its own: code 1",
  ]);
});
