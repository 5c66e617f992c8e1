import type { Logger } from '../core/logger.js';
import { isPledgeError } from '../core/errors.js';
import type { RetentionService } from './retention.service.js';

export interface RetentionSchedule {
  /** Stops the timer; a sweep in progress stops after its current batch, and this waits for it. */
  stop(): Promise<void>;
}

/**
 * Sweeps every `intervalMs` in `pledge serve` (PLEDGE_RETENTION_INTERVAL). Each tick starts
 * after the previous sweep ended, so sweeps never overlap in one process; across processes
 * the lease decides, and a process that finds it taken simply waits for its next tick.
 */
export function startRetentionSchedule(retention: RetentionService, intervalMs: number, logger: Logger): RetentionSchedule {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  const abort = new AbortController();
  const tick = () => {
    running = retention
      .run({ type: 'system', id: 'retention' }, { signal: abort.signal })
      .then((report) => logger.info({ rows: report.totals.rows, keptByException: report.totals.keptByException, skippedByHold: report.totals.skippedByHold }, 'retention sweep finished'))
      .catch((error: unknown) => {
        if (isPledgeError(error) && error.code === 'retention_sweep_running') logger.debug('retention sweep skipped: another process is sweeping');
        else logger.error({ err: error }, 'retention sweep failed; the next one resumes where it stopped');
      })
      .finally(() => {
        running = undefined;
        if (!stopped) schedule();
      });
  };
  const schedule = () => {
    timer = setTimeout(tick, intervalMs);
    timer.unref();
  };
  if (intervalMs > 0) schedule();
  return {
    async stop() {
      stopped = true;
      abort.abort();
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
