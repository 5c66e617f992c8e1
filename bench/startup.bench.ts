import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { median, type ResultRow } from './support.js';

interface StartSample {
  readyMs: number;
  rssMb: number;
}

/** Starts a process, polls GET /health until 200, then measures its resident memory at rest. */
async function startOnce(command: string[], cwd: string, settleMs: number): Promise<StartSample> {
  const started = performance.now();
  const child = spawn(process.execPath, command, { cwd, stdio: ['ignore', 'pipe', 'ignore'], env: { PATH: process.env.PATH, PLEDGE_LOG_LEVEL: 'warn' } });
  try {
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const deadline = started + 15_000;
    let url: string | undefined;
    for (;;) {
      if (performance.now() > deadline) throw new Error(`no answer from ${command.join(' ')}:\n${output}`);
      url ??= /(?:running on|listening on) (http:\/\/[^\s]+)/.exec(output)?.[1];
      if (url) {
        const response = await fetch(`${url}/health`).catch(() => undefined);
        if (response?.status === 200) {
          await response.arrayBuffer();
          break;
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    const readyMs = performance.now() - started;
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return { readyMs, rssMb: rssKb / 1024 };
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
  }
}

/**
 * `pledge serve` from process start to the first /health 200, on SQLite with the demo
 * policy, each run in a fresh directory (so migrations and key generation are included);
 * then idle RSS after a settle period. Ceiling: a bare Fastify process.
 */
export async function benchStartup(runs = 7): Promise<ResultRow[]> {
  const root = process.cwd();
  const pledge: StartSample[] = [];
  const bare: StartSample[] = [];
  for (let i = 0; i < runs; i++) {
    const directory = mkdtempSync(path.join(os.tmpdir(), 'pledge-bench-'));
    try {
      pledge.push(await startOnce([path.join(root, 'dist/pledge.mjs'), 'serve', '--port', '0'], directory, i === 0 ? 3000 : 300));
      bare.push(await startOnce([path.join(root, 'dist/bench/bare-server.js'), '0'], directory, i === 0 ? 3000 : 300));
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  }
  const ready = median(pledge.map((sample) => sample.readyMs));
  const bareReady = median(bare.map((sample) => sample.readyMs));
  // The first run settled 3 s: that is the idle figure.
  const rss = pledge[0]!.rssMb;
  const bareRss = bare[0]!.rssMb;
  return [
    {
      benchmark: `pledge serve: process start → first /health 200 (SQLite, fresh data dir), median of ${runs}`,
      measured: `${ready.toFixed(0)} ms`,
      ceiling: `${bareReady.toFixed(0)} ms (bare Fastify)`,
      ratio: `${(ready / bareReady).toFixed(1)}×`,
      target: '≤ 800 ms',
      verdict: ready <= 800 ? 'pass' : 'FAIL',
    },
    {
      benchmark: 'pledge serve: idle resident memory (3 s after start)',
      measured: `${rss.toFixed(1)} MB`,
      ceiling: `${bareRss.toFixed(1)} MB (bare Fastify)`,
      ratio: `${(rss / bareRss).toFixed(1)}×`,
      target: '≤ 100 MB',
      verdict: rss <= 100 ? 'pass' : 'FAIL',
    },
  ];
}
