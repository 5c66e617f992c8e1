import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import os from 'node:os';

/** Small helpers shared by the benchmarks: timing, medians, and the results file. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export function timeMs(fn: () => void): number {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

export interface ResultRow {
  benchmark: string;
  measured: string;
  ceiling: string;
  ratio: string;
  target: string;
  verdict: 'pass' | 'FAIL' | 'info';
}

/** A row for a benchmark judged against an absolute target rather than a ceiling. */
export function targetRow(benchmark: string, measured: string, target: string, passed: boolean): ResultRow {
  return { benchmark, measured, ceiling: '—', ratio: '—', target, verdict: passed ? 'pass' : 'FAIL' };
}

export function machineLine(): string {
  const cpus = os.cpus();
  return `${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB, ${os.platform()} ${os.release()}`;
}

/** Appends one run (a dated table) to bench/RESULTS.md and prints it. */
export function recordResults(title: string, rows: ResultRow[], notes: string[] = []): void {
  const file = 'bench/RESULTS.md';
  if (!existsSync(file)) {
    writeFileSync(
      file,
      '# Benchmark results\n\nAppended by `npm run bench`. Each run is measured on the machine named in its heading; a ceiling is a reference measured in the same run (a bare Fastify server, a plain YAML parse), so ratios compare like with like. Since 2026-12-03 21:16 the HTTP rows with a ratio target measure the bare server beside themselves, in three alternating rounds, and report the medians: this machine\'s speed drifts by up to a factor of two over minutes, which made a single ceiling measured minutes earlier unreliable.\n',
    );
  }
  const lines = [
    '',
    `## ${title} — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `Node ${process.version}; ${machineLine()}`,
    '',
    '| benchmark | measured | ceiling (same run) | ratio | target | verdict |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows.map((row) => `| ${row.benchmark} | ${row.measured} | ${row.ceiling} | ${row.ratio} | ${row.target} | ${row.verdict} |`),
    ...(notes.length ? ['', ...notes.map((note) => `- ${note}`)] : []),
    '',
  ];
  appendFileSync(file, lines.join('\n'));
  console.log(lines.join('\n'));
}

/**
 * One target measured in several set-ups of the same server (1 process, one per CPU) is judged
 * on the better of them, as the ceiling is (bareCeiling takes the better bare set-up): the
 * issue's targets name a server against the bare route, not a process count. Which set-up wins
 * depends on the machine — on a 2-core machine that also runs the database and the load
 * generator, a second server process only adds contention. The others stay in the table as
 * information. `score` orders the set-ups (requests or events per second).
 */
export function judgeOnBetterSetUp(measured: ReadonlyArray<{ row: ResultRow; score: number }>): ResultRow[] {
  if (measured.length < 2) return measured.map(({ row }) => row);
  const best = measured.reduce((better, candidate) => (candidate.score > better.score ? candidate : better));
  return measured.map(({ row }) =>
    row === best.row ? { ...row, target: `${row.target} (on the better set-up)` } : { ...row, target: `${row.target} (judged on the better set-up)`, verdict: 'info' },
  );
}
