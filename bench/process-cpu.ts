import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU time used so far by a process and every process below it (the workers `pledge serve
 * --workers N` forks), in microseconds, read from Linux's /proc; undefined where there is no
 * /proc. Requests per second follow the machine's speed, which drifts by up to a factor of two
 * over minutes here; the server's CPU time per request drifts much less, so the benchmarks
 * report it beside the rate, as information.
 */
export function processTreeCpuMicros(rootPid: number): number | undefined {
  const stats = new Map<number, { parent: number; micros: number }>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat) stats.set(Number(entry), stat);
  }
  if (!stats.has(rootPid)) return undefined;
  let total = 0;
  const pending = [rootPid];
  while (pending.length > 0) {
    const pid = pending.pop()!;
    total += stats.get(pid)!.micros;
    for (const [child, stat] of stats) if (stat.parent === pid) pending.push(child);
  }
  return total;
}

/** Clock ticks per second of /proc/<pid>/stat's times: 100 on every Linux this runs on (USER_HZ). */
const TICKS_PER_SECOND = 100;

function readStat(pid: number): { parent: number; micros: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    // The process ended between listing and reading.
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: the fields after it start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // Fields 4 (ppid), 14 (utime) and 15 (stime) of proc(5), counted from the state field (3).
  const parent = Number(fields[1]);
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(parent) && Number.isFinite(ticks) ? { parent, micros: (ticks * 1_000_000) / TICKS_PER_SECOND } : undefined;
}
