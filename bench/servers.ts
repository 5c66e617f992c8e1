import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { processTreeCpuMicros } from './process-cpu.js';
import { median } from './support.js';

/**
 * The servers HTTP benchmarks measure, each in a process of its own (so the load generator
 * does not share its event loop): the bare Fastify route that is the ceiling, and `pledge serve`.
 */
export interface HttpLoad {
  requests: number;
  p99: number;
  errors: number;
  /** Microseconds of the server's CPU time (all its processes) per request answered, where /proc tells (see processTreeCpuMicros). */
  cpuPerRequest?: number;
}

/** A server process started here: its address, and the process to stop (and to read the CPU time of). */
export interface RunningServer {
  child: ChildProcess;
  base: string;
}

/** Resolves with the first capture of `pattern` in the child's output (its address). */
export async function waitForLine(child: ChildProcess, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`no start within 20 s:\n${output}`)), 20_000);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      const match = pattern.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code}:\n${output}`)));
  });
}

/**
 * Seconds of the same load sent before each measured run and not counted: a server is measured
 * as it runs in production, with its hot paths compiled by the JIT, not while it starts. (The
 * bare route warms up in a moment; Pledge's code paths take a few seconds.)
 */
export const WARM_UP_SECONDS = 3;

/**
 * `shape` sent to `server` over 50 connections for `durationSeconds`, after a warm-up of the
 * same load; errors count transport errors and non-2xx answers. The server's CPU time is read
 * around the measured window only (the load generator runs in this process, not the server's).
 */
export async function httpLoad(server: RunningServer, shape: LoadShape, durationSeconds: number, warmUp = true): Promise<HttpLoad> {
  const options = {
    connections: 50,
    url: `${server.base}${shape.requests ? '' : (shape.path ?? '/health')}`,
    ...(shape.headers ? { headers: shape.headers } : {}),
    ...(shape.requests ? { requests: shape.requests } : {}),
  };
  if (warmUp) await autocannon({ ...options, duration: WARM_UP_SECONDS });
  const cpuBefore = serverCpuMicros(server);
  const result = await autocannon({ ...options, duration: durationSeconds });
  const cpuAfter = serverCpuMicros(server);
  const load: HttpLoad = { requests: result.requests.average, p99: result.latency.p99, errors: result.errors + result.non2xx };
  if (cpuBefore !== undefined && cpuAfter !== undefined && result.requests.total > 0) load.cpuPerRequest = (cpuAfter - cpuBefore) / result.requests.total;
  return load;
}

function serverCpuMicros(server: RunningServer): number | undefined {
  return server.child.pid === undefined ? undefined : processTreeCpuMicros(server.child.pid);
}

/** `, 41 µs server CPU per request` when it was measured. */
export function describeCpu(load: HttpLoad): string {
  return load.cpuPerRequest === undefined ? '' : `, ${Math.round(load.cpuPerRequest)} µs server CPU per request`;
}

/** Server processes the benchmarks run `pledge serve` with: one per CPU, as production does (`--workers auto`). */
export const SERVER_PROCESSES = os.availableParallelism();

export interface Ceiling extends HttpLoad {
  /** The process count of the bare server that did best. */
  processes: number;
}

/** What a benchmark sends: one path, or a rotation of requests, with its headers. */
export interface LoadShape {
  path?: string;
  headers?: Record<string, string>;
  requests?: autocannon.Request[];
}

/**
 * The ceiling: a bare Fastify route answering a constant, loaded exactly like the route measured
 * (the same paths, headers and bodies, so the load generator does the same work for both) — in
 * one process and in as many as Pledge runs, the better of the two. (With the load generator on
 * the same machine, the single process is usually the faster: the generator needs a core.)
 * Rows with a ratio target take only the process count from it and measure the ceiling
 * beside themselves (pairedLoad).
 */
export async function bareCeiling(durationSeconds: number, shape: LoadShape = {}): Promise<Ceiling> {
  let best: Ceiling | undefined;
  for (const processes of [...new Set([1, SERVER_PROCESSES])]) {
    const bare = await startBare(processes);
    try {
      const load = await httpLoad(bare, shape, durationSeconds);
      if (!best || load.requests > best.requests) best = { ...load, processes };
    } finally {
      await stopChild(bare.child);
    }
  }
  return best!;
}

/** The bare Fastify route in `processes` processes on a free port; the caller stops `child`. */
export async function startBare(processes: number): Promise<RunningServer> {
  const child = spawn(process.execPath, [path.resolve('dist/bench/bare-server.js'), '0', String(processes)], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    return { child, base: await waitForLine(child, /listening on (http:\/\/[^\s]+)/) };
  } catch (error) {
    child.kill('SIGTERM');
    throw error;
  }
}

/** Rounds of a paired measurement (pairedLoad). */
export const PAIRED_ROUNDS = 3;

export interface PairedLoad {
  /** The median round of the measured server. */
  measured: HttpLoad;
  /** The median round of the bare route. */
  ceiling: Ceiling;
  /** The median of the rounds' ratios, measured to bare. */
  ratio: number;
  rounds: number;
}

/**
 * The server at `base` and the bare route (in `ceiling.processes` processes) loaded with
 * `shape` alternately, PAIRED_ROUNDS times, the bare route first in each round. This machine's
 * speed drifts by up to a factor of two over minutes (other tenants of its host), so a ceiling
 * measured minutes away from the run it divides says little; a round compares two runs made
 * seconds apart. The row reports the median round of each and the median of the rounds'
 * ratios. Both are warmed up in the first round only: after it they are warm.
 */
export async function pairedLoad(server: RunningServer, shape: LoadShape, durationSeconds: number, ceiling: Pick<Ceiling, 'processes'>): Promise<PairedLoad> {
  const bare = await startBare(ceiling.processes);
  try {
    const bareRuns: HttpLoad[] = [];
    const measuredRuns: HttpLoad[] = [];
    for (let round = 0; round < PAIRED_ROUNDS; round++) {
      bareRuns.push(await httpLoad(bare, shape, durationSeconds, round === 0));
      measuredRuns.push(await httpLoad(server, shape, durationSeconds, round === 0));
    }
    return {
      measured: medianRound(measuredRuns),
      ceiling: { ...medianRound(bareRuns), processes: ceiling.processes },
      ratio: median(measuredRuns.map((run, index) => run.requests / bareRuns[index]!.requests)),
      rounds: PAIRED_ROUNDS,
    };
  } finally {
    await stopChild(bare.child);
  }
}

/**
 * Rounds of one load as a row reports them: the median round's requests/s, the worst round's
 * p99, every round's errors, the median of the rounds' CPU time per request.
 */
function medianRound(runs: readonly HttpLoad[]): HttpLoad {
  const round: HttpLoad = { requests: median(runs.map((run) => run.requests)), errors: runs.reduce((sum, run) => sum + run.errors, 0), p99: Math.max(...runs.map((run) => run.p99)) };
  const cpu = runs.map((run) => run.cpuPerRequest);
  if (cpu.every((value) => value !== undefined)) round.cpuPerRequest = median(cpu);
  return round;
}

/**
 * `shape` sent to `server` PAIRED_ROUNDS times (warmed up before the first), for a
 * row whose target is absolute: one window of this machine, whose speed drifts over minutes,
 * says less than the median of several.
 */
export async function repeatedLoad(server: RunningServer, shape: LoadShape, durationSeconds: number): Promise<HttpLoad> {
  const runs: HttpLoad[] = [];
  for (let round = 0; round < PAIRED_ROUNDS; round++) runs.push(await httpLoad(server, shape, durationSeconds, round === 0));
  return medianRound(runs);
}

/** How a repeated row names its measured window. */
export function describeRepeatedWindow(durationSeconds: number): string {
  return `median of ${PAIRED_ROUNDS} rounds of ${durationSeconds} s (p99: the worst round's), after ${WARM_UP_SECONDS} s of warm-up`;
}

/** How a paired row names its measured window and its ceiling. */
export function describePairedWindow(durationSeconds: number): string {
  return `${PAIRED_ROUNDS} rounds of ${durationSeconds} s, each beside a run of the bare route, after ${WARM_UP_SECONDS} s of warm-up`;
}

export function describePairedCeiling(paired: PairedLoad): string {
  return `${describeCeiling(paired.ceiling)}, median of the ${paired.rounds} rounds beside it`;
}

export function describeCeiling(ceiling: Ceiling): string {
  return `${Math.round(ceiling.requests).toLocaleString('en')} req/s (bare Fastify, ${ceiling.processes === 1 ? '1 process' : `${ceiling.processes} processes`}${describeCpu(ceiling)})`;
}

/** `pledge serve --workers N` (the bundled command) on a free port; the caller kills `child`. */
export async function startPledge(directory: string, env: NodeJS.ProcessEnv, processes = SERVER_PROCESSES): Promise<RunningServer> {
  const child = spawn(process.execPath, [path.resolve('dist/pledge.mjs'), 'serve', '--port', '0', '--workers', String(processes)], { cwd: directory, env, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    return { child, base: await waitForLine(child, /Pledge is running on (http:\/\/[^\s]+)/) };
  } catch (error) {
    child.kill('SIGTERM');
    throw error;
  }
}

/** Stops a server started here and waits for it to be gone (the next one may use its files). */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  await exited;
}
