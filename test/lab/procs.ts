/**
 * A small process supervisor for the lab and for tests that kill services: runs each service's
 * TypeScript entry as its own Node process (`node --import tsx --conditions=source <entry>`),
 * logs its output to a file, and waits for its ready line `<service>: ready {json}`.
 *
 * With LN_SERVICES_FROM=dist (set by the test command, which builds first), a service entry
 * `services/<name>/src/main.ts` runs from its compiled `services/<name>/dist/main.js` instead:
 * the same code, started in a third of the CPU time tsx takes (it matters where tests and the
 * chaos run start services hundreds of times on two cores). A build older than its sources is
 * refused, never run.
 *
 * No module state: every Supervisor owns its children, and (unless told otherwise) SIGKILLs
 * those still running if this process exits without calling stopAll().
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, readdirSync, statSync, type WriteStream } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** The repository root (this file is test/lab/procs.ts). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The parsed JSON of a ready line. */
export type ReadyInfo = Record<string, unknown>;

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface StartOptions {
  /**
   * The service name in the ready line `<service>: ready {json}`. Default: the directory after
   * `services/` in the entry path (services/signer/src/main.ts → "signer"), else the process name.
   */
  readonly service?: string;
  /** How long to wait for the ready line. Default 60 000 ms. */
  readonly readyTimeoutMs?: number;
  /** Node.js options before the entry (e.g. `--cpu-prof`, `--cpu-prof-dir=<dir>`); kept across restarts. */
  readonly nodeArgs?: readonly string[];
}

export interface SupervisorOptions {
  /** Directory for the per-process log files `<name>.log` (created if missing). */
  readonly logDir: string;
  /** Working directory of the children. Default: the repository root. */
  readonly cwd?: string;
  /** Progress lines (log file paths, exits). Default: none. */
  readonly log?: (line: string) => void;
  /** Called when a process that had been ready exits without being asked to. */
  readonly onUnexpectedExit?: (name: string, exit: ExitInfo, lastLines: readonly string[]) => void;
  /** Environment the per-process env is laid over. Default: process.env. */
  readonly baseEnv?: Readonly<Record<string, string | undefined>>;
  /** Lines kept in memory per process. Default 50. */
  readonly keepLines?: number;
  /** SIGKILL still-running children when this process exits. Default true. */
  readonly killOnExit?: boolean;
}

export class ProcessError extends Error {
  override readonly name = "ProcessError";
  constructor(
    readonly process: string,
    message: string,
    readonly lastLines: readonly string[],
  ) {
    super(
      `${message}${lastLines.length > 0 ? `\n--- last lines of ${process} ---\n${lastLines.join("\n")}` : ""}`,
    );
  }
}

interface Spec {
  readonly entry: string;
  readonly env: Readonly<Record<string, string>>;
  readonly opts: StartOptions;
}

interface Running {
  readonly spec: Spec;
  readonly child: ChildProcess;
  readonly lines: string[];
  readonly logFile: string;
  readonly exited: Promise<ExitInfo>;
  exit: ExitInfo | undefined;
  ready: ReadyInfo | undefined;
  /** Set when we sent a signal, so the exit is not reported as unexpected. */
  stopping: boolean;
}

/** How to run TypeScript: `--import tsx` when tsx resolves from `cwd`, else the tsx binary. */
export function tsxCommand(cwd: string = REPO_ROOT): { command: string; prefix: string[] } {
  try {
    createRequire(join(cwd, "package.json")).resolve("tsx");
    return { command: process.execPath, prefix: ["--import", "tsx", "--conditions=source"] };
  } catch {
    const bin = join(cwd, "node_modules", ".bin", "tsx");
    if (!existsSync(bin))
      throw new Error(`tsx is not installed in ${cwd}: run pnpm install at the repository root`);
    return { command: bin, prefix: ["--conditions=source"] };
  }
}

const SERVICE_ENTRY = /^services\/([a-z-]+)\/src\/main\.ts$/;

/**
 * How to run `entry`: with LN_SERVICES_FROM=dist a service's compiled main.js under plain node,
 * else through tsx. Throws when the build is missing or older than a source it is built from.
 */
export function entryCommand(
  entry: string,
  tsx: { command: string; prefix: string[] },
  cwd: string = REPO_ROOT,
  from: string | undefined = process.env["LN_SERVICES_FROM"],
): { command: string; args: string[] } {
  const service = SERVICE_ENTRY.exec(entry)?.[1];
  if (from !== "dist" || service === undefined) return { command: tsx.command, args: [...tsx.prefix, entry] };
  const compiled = join("services", service, "dist", "main.js");
  if (!existsSync(join(cwd, compiled)))
    throw new Error(
      `LN_SERVICES_FROM=dist: ${compiled} is missing; run \`pnpm run build\` or unset LN_SERVICES_FROM`,
    );
  assertBuildCurrent(cwd);
  return { command: process.execPath, args: [compiled] };
}

const checkedBuilds = new Set<string>();

/** Every workspace project's tsconfig.tsbuildinfo is newer than each file of its src/ (tsc -b rewrites it on a change). */
function assertBuildCurrent(cwd: string): void {
  if (checkedBuilds.has(cwd)) return;
  const newest = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
      const p = join(dir, e.name);
      return Math.max(m, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
    }, 0);
  for (const group of ["packages", "services"]) {
    for (const project of readdirSync(join(cwd, group))) {
      const src = join(cwd, group, project, "src");
      const info = join(cwd, group, project, "tsconfig.tsbuildinfo");
      if (!existsSync(src) || !existsSync(join(cwd, group, project, "tsconfig.json"))) continue;
      if (!existsSync(info) || statSync(info).mtimeMs < newest(src))
        throw new Error(
          `LN_SERVICES_FROM=dist: the build of ${group}/${project} is older than its sources; ` +
            "run `pnpm run build` or unset LN_SERVICES_FROM",
        );
    }
  }
  checkedBuilds.add(cwd);
}

function defaultService(name: string, entry: string): string {
  const m = /(?:^|[\\/])services[\\/]([^\\/]+)[\\/]/.exec(entry);
  return m?.[1] ?? name;
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

export class Supervisor {
  readonly #opts: SupervisorOptions;
  readonly #procs = new Map<string, Running>();
  readonly #specs = new Map<string, Spec>();
  readonly #tsx: { command: string; prefix: string[] };
  readonly #onExit = (): void => {
    for (const p of this.#procs.values())
      if (p.exit === undefined)
        try {
          p.child.kill("SIGKILL");
        } catch {
          /* already gone */
        }
  };

  constructor(opts: SupervisorOptions) {
    this.#opts = opts;
    this.#tsx = tsxCommand(opts.cwd ?? REPO_ROOT);
    mkdirSync(opts.logDir, { recursive: true });
    if (opts.killOnExit ?? true) process.on("exit", this.#onExit);
  }

  /** Names of the processes started so far (running or not). */
  names(): string[] {
    return [...this.#specs.keys()];
  }

  /** The log file of a process. */
  logFile(name: string): string {
    return join(this.#opts.logDir, `${name}.log`);
  }

  /** The last lines (stdout and stderr) of a process, oldest first. */
  lastLines(name: string): readonly string[] {
    return [...(this.#procs.get(name)?.lines ?? [])];
  }

  /** The pid of a running process, undefined when it is not running. */
  pid(name: string): number | undefined {
    const p = this.#procs.get(name);
    return p && p.exit === undefined ? p.child.pid : undefined;
  }

  /** True while the process runs. */
  isRunning(name: string): boolean {
    const p = this.#procs.get(name);
    return p !== undefined && p.exit === undefined;
  }

  /** The ready info of the current incarnation, if it printed its ready line. */
  readyInfo(name: string): ReadyInfo | undefined {
    return this.#procs.get(name)?.ready;
  }

  /** Resolves when the current incarnation exits (at once if it has). */
  exited(name: string): Promise<ExitInfo> {
    const p = this.#procs.get(name);
    if (p === undefined) return Promise.reject(new Error(`no process ${name}`));
    return p.exited;
  }

  /**
   * Spawns `entry` (a path relative to the cwd, or absolute) with `env` over the base environment.
   * Resolves with the JSON of the ready line; rejects with a ProcessError (holding the last
   * lines) if the process exits first or the ready line does not come in time.
   */
  start(
    name: string,
    entry: string,
    env: Readonly<Record<string, string>>,
    opts: StartOptions = {},
  ): Promise<ReadyInfo> {
    if (this.isRunning(name)) return Promise.reject(new Error(`process ${name} is already running`));
    const spec: Spec = { entry, env, opts };
    this.#specs.set(name, spec);
    return this.#spawn(name, spec);
  }

  /** Sends `signal` (default SIGKILL) and resolves when the process has exited. */
  async kill(name: string, signal: NodeJS.Signals = "SIGKILL"): Promise<ExitInfo> {
    const p = this.#procs.get(name);
    if (p === undefined) throw new Error(`no process ${name}`);
    if (p.exit !== undefined) return p.exit;
    p.stopping = true;
    p.child.kill(signal);
    return p.exited;
  }

  /** Stops one process: SIGTERM, then SIGKILL after `graceMs` (default 5000). */
  async stop(name: string, graceMs = 5000): Promise<ExitInfo> {
    const p = this.#procs.get(name);
    if (p === undefined) throw new Error(`no process ${name}`);
    if (p.exit !== undefined) return p.exit;
    p.stopping = true;
    p.child.kill("SIGTERM");
    const timer = setTimeout(() => {
      if (p.exit === undefined) {
        this.#opts.log?.(`${name} did not exit ${graceMs} ms after SIGTERM: SIGKILL`);
        p.child.kill("SIGKILL");
      }
    }, graceMs);
    try {
      return await p.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops the process if it runs, then starts it again with the same entry and env. */
  async restart(name: string, envOverrides: Readonly<Record<string, string>> = {}): Promise<ReadyInfo> {
    const spec = this.#specs.get(name);
    if (spec === undefined) throw new Error(`no process ${name} to restart`);
    if (this.isRunning(name)) await this.stop(name);
    const next: Spec = { ...spec, env: { ...spec.env, ...envOverrides } };
    this.#specs.set(name, next);
    return this.#spawn(name, next);
  }

  /** Stops every running process (SIGTERM, SIGKILL after `graceMs`), in reverse start order. */
  async stopAll(graceMs = 5000): Promise<void> {
    const names = [...this.#procs.keys()].reverse();
    await Promise.all(names.map((n) => (this.isRunning(n) ? this.stop(n, graceMs) : undefined)));
    process.off("exit", this.#onExit);
  }

  #spawn(name: string, spec: Spec): Promise<ReadyInfo> {
    const cwd = this.#opts.cwd ?? REPO_ROOT;
    const service = spec.opts.service ?? defaultService(name, spec.entry);
    const readyRe = new RegExp(`^${escapeRe(service)}: ready (\\{.*\\})\\s*$`);
    const logFile = this.logFile(name);
    const out: WriteStream = createWriteStream(logFile, { flags: "a" });
    const keep = this.#opts.keepLines ?? 50;
    const baseEnv = this.#opts.baseEnv ?? process.env;
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(baseEnv)) if (v !== undefined) env[k] = v;
    Object.assign(env, spec.env);

    // Node's own options go first (the tsx binary passes the ones it does not know on to node).
    const run = entryCommand(spec.entry, this.#tsx, cwd);
    const args = [...(spec.opts.nodeArgs ?? []), ...run.args];
    const child = spawn(run.command, args, {
      cwd,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let resolveExit!: (e: ExitInfo) => void;
    const running: Running = {
      spec,
      child,
      lines: [],
      logFile,
      exited: new Promise<ExitInfo>((r) => (resolveExit = r)),
      exit: undefined,
      ready: undefined,
      stopping: false,
    };
    this.#procs.set(name, running);
    out.write(`--- ${new Date().toISOString()} start ${spec.entry} (pid ${child.pid ?? "?"}) ---\n`);
    this.#opts.log?.(`${name}: log ${logFile}`);

    return new Promise<ReadyInfo>((resolveReady, rejectReady) => {
      let settled = false;
      const settle = (f: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        f();
      };
      const timeoutMs = spec.opts.readyTimeoutMs ?? 60_000;
      const timer = setTimeout(
        () =>
          settle(() =>
            rejectReady(
              new ProcessError(
                name,
                `${name} printed no "${service}: ready {...}" line within ${timeoutMs} ms (log: ${logFile})`,
                running.lines,
              ),
            ),
          ),
        timeoutMs,
      );
      const onLine = (line: string): void => {
        running.lines.push(line);
        if (running.lines.length > keep) running.lines.splice(0, running.lines.length - keep);
        out.write(`${line}\n`);
        if (running.ready !== undefined) return;
        const m = readyRe.exec(line);
        if (m === null) return;
        let info: unknown;
        try {
          info = JSON.parse(m[1] ?? "");
        } catch {
          return;
        }
        if (typeof info !== "object" || info === null || Array.isArray(info)) return;
        running.ready = info as ReadyInfo;
        settle(() => resolveReady(info as ReadyInfo));
      };
      let open = 2;
      for (const stream of [child.stdout, child.stderr]) {
        if (stream === null) continue;
        const rl = createInterface({ input: stream, crlfDelay: Infinity });
        rl.on("line", onLine);
        rl.on("close", () => {
          if (--open === 0) finish();
        });
      }
      let exitInfo: ExitInfo | undefined;
      let closed = false;
      // Report the exit once both the process has exited and its output is drained.
      const finish = (): void => {
        if (exitInfo === undefined || !closed || open > 0) return;
        const exit = exitInfo;
        running.exit = exit;
        out.end(`--- ${new Date().toISOString()} exit ${describeExit(exit)} ---\n`);
        resolveExit(exit);
        settle(() =>
          rejectReady(
            new ProcessError(
              name,
              `${name} exited (${describeExit(exit)}) before printing "${service}: ready {...}" (log: ${logFile})`,
              running.lines,
            ),
          ),
        );
        if (running.ready !== undefined && !running.stopping) {
          this.#opts.log?.(`${name} exited unexpectedly (${describeExit(exit)}); log: ${logFile}`);
          this.#opts.onUnexpectedExit?.(name, exit, [...running.lines]);
        }
      };
      child.on("error", (e) => {
        running.lines.push(`spawn error: ${e.message}`);
        exitInfo ??= { code: null, signal: null };
        closed = true;
        open = 0;
        finish();
      });
      child.on("close", (code, signal) => {
        exitInfo = { code, signal };
        closed = true;
        open = 0;
        finish();
      });
    });
  }
}

export function describeExit(e: ExitInfo): string {
  return e.signal !== null ? `signal ${e.signal}` : `code ${e.code ?? "?"}`;
}
