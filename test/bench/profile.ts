/**
 * Summarises V8 CPU profiles (the `.cpuprofile` files `node --cpu-prof` writes at exit) into self
 * time by function (name + file + line), optionally only over a window of time: the payments bench
 * profiles A's channel service and signer for the whole run and reads the 64-payer phase alone.
 *
 * Timestamps in a .cpuprofile are microseconds of the monotonic clock, the one
 * `process.hrtime.bigint()` reads (both CLOCK_MONOTONIC on Linux), so a window taken in the bench
 * process applies to the profiled processes' samples.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** The parts of a V8 CPU profile read here (Chrome DevTools' Profiler.Profile). */
export interface CpuProfile {
  readonly nodes: readonly {
    readonly id: number;
    readonly callFrame: {
      readonly functionName: string;
      readonly url: string;
      readonly lineNumber: number;
    };
  }[];
  /** Microseconds. */
  readonly startTime: number;
  readonly endTime: number;
  /** The node id of each sample. */
  readonly samples?: readonly number[];
  /** Microseconds from the previous sample (the first: from startTime). */
  readonly timeDeltas?: readonly number[];
}

/** A window of the monotonic clock, in microseconds (process.hrtime.bigint() / 1000n). */
export interface Window {
  readonly fromUs: number;
  readonly toUs: number;
}

export interface SelfTime {
  /** Function name, "(anonymous)" when V8 has none, or a V8 pseudo-frame: (program), (garbage collector). */
  readonly name: string;
  /**
   * File, shortened (repository-relative; a dependency as its package name), and the 1-based line
   * for JavaScript (a .ts file's lines in the profile are of tsx's output: left out).
   */
  readonly where: string;
  readonly ms: number;
}

export interface ProfileSummary {
  /** Milliseconds sampled in the window, (idle) included. */
  readonly sampledMs: number;
  /** Milliseconds in (idle): the process waited (I/O, timers). */
  readonly idleMs: number;
  /** Self time by function, most first, (idle) left out. */
  readonly functions: readonly SelfTime[];
}

/** Shortens a script URL: repository-relative, node_modules as the package, node: as is. */
export function shortUrl(url: string, repoRoot?: string): string {
  if (url === "") return "";
  let u = url.startsWith("file://") ? decodeURIComponent(url.slice("file://".length)) : url;
  const nm = u.lastIndexOf("/node_modules/");
  if (nm >= 0) {
    const rest = u.slice(nm + "/node_modules/".length).split("/");
    const pkg = rest[0]?.startsWith("@") === true ? `${rest[0]}/${rest[1] ?? ""}` : (rest[0] ?? "");
    return pkg;
  }
  if (repoRoot !== undefined && u.startsWith(`${repoRoot}/`)) u = u.slice(repoRoot.length + 1);
  return u;
}

/**
 * Self time by function of one profile: each sample counts the time to the next sample (the last
 * one, to endTime), attributed to the frame on top of the stack. Only samples whose time falls in
 * `window` count, when given.
 */
export function selfTimes(profile: CpuProfile, window?: Window, repoRoot?: string): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  const totals = new Map<string, SelfTime>();
  let sampledUs = 0;
  let idleUs = 0;
  let t = profile.startTime;
  const times = deltas.map((d) => (t += d));
  for (let i = 0; i < samples.length; i++) {
    const at = times[i] ?? profile.startTime;
    if (window !== undefined && (at < window.fromUs || at >= window.toUs)) continue;
    const next = times[i + 1] ?? profile.endTime;
    const us = Math.max(0, next - at);
    const node = byId.get(samples[i] ?? -1);
    if (node === undefined) continue;
    sampledUs += us;
    const f = node.callFrame;
    if (f.functionName === "(idle)") {
      idleUs += us;
      continue;
    }
    const name = f.functionName === "" ? "(anonymous)" : f.functionName;
    const file = shortUrl(f.url, repoRoot);
    // A TypeScript file's line is of the code tsx generated from it, not of the source: left out.
    const where = file === "" || /\.[cm]?tsx?$/.test(file) ? file : `${file}:${f.lineNumber + 1}`;
    const key = `${name}\u0000${where}`;
    const prev = totals.get(key);
    totals.set(key, { name, where, ms: (prev?.ms ?? 0) + us / 1000 });
  }
  return {
    sampledMs: sampledUs / 1000,
    idleMs: idleUs / 1000,
    functions: [...totals.values()].sort((a, b) => b.ms - a.ms),
  };
}

/** Adds up summaries (the profiles of one service's successive processes). */
export function mergeSummaries(summaries: readonly ProfileSummary[]): ProfileSummary {
  const totals = new Map<string, SelfTime>();
  for (const s of summaries)
    for (const f of s.functions) {
      const key = `${f.name}\u0000${f.where}`;
      totals.set(key, { ...f, ms: (totals.get(key)?.ms ?? 0) + f.ms });
    }
  return {
    sampledMs: summaries.reduce((a, s) => a + s.sampledMs, 0),
    idleMs: summaries.reduce((a, s) => a + s.idleMs, 0),
    functions: [...totals.values()].sort((a, b) => b.ms - a.ms),
  };
}

/** Every .cpuprofile in `dir` (none when it is missing), summarised over `window` and merged. */
export function summariseDir(
  dir: string,
  window?: Window,
  repoRoot?: string,
): { files: number; summary: ProfileSummary } {
  let names: string[];
  try {
    names = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"));
  } catch {
    names = [];
  }
  const summaries = names.map((f) =>
    selfTimes(JSON.parse(readFileSync(join(dir, f), "utf8")) as CpuProfile, window, repoRoot),
  );
  return { files: names.length, summary: mergeSummaries(summaries) };
}

/** Lines for a report: busy time, then the top `n` functions by self time with their share of busy time. */
export function formatSummary(label: string, s: ProfileSummary, n = 15): string[] {
  const busy = s.sampledMs - s.idleMs;
  const pct = (ms: number): string => (busy > 0 ? ((100 * ms) / busy).toFixed(1) : "-");
  const lines = [
    `${label}: ${busy.toFixed(0)} ms busy of ${s.sampledMs.toFixed(0)} ms sampled (${s.idleMs.toFixed(0)} ms idle); top ${n} by self time:`,
  ];
  for (const f of s.functions.slice(0, n))
    lines.push(
      `    ${f.ms.toFixed(0).padStart(7)} ms ${pct(f.ms).padStart(5)}%  ${f.name}${f.where !== "" ? `  ${f.where}` : ""}`,
    );
  return lines;
}
