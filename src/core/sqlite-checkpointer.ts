import { Worker } from 'node:worker_threads';
import { sqliteModulePath } from './sqlite.js';

/**
 * Moves a SQLite file's write-ahead log back into the database from a thread of its own.
 * SQLite's automatic checkpoint runs inside the commit that crosses its threshold, on the event
 * loop: copying tens of megabytes froze a busy server for a fifth of a second every few
 * seconds (and made the slowest hundredth of its answers wait that long). Here a worker thread
 * runs a PASSIVE checkpoint (which never waits for readers or writers) every `intervalMs`, and a
 * RESTART one once the log is long (RESTART_FRAMES); the writer's own automatic checkpoint stays
 * as a backstop.
 *
 *   const checkpointer = startCheckpointer('/var/lib/pledge/pledge.db', 500);
 *   await checkpointer.stop();
 */
export interface Checkpointer {
  stop(): Promise<void>;
}

/**
 * Frames in the log (128 MB of 8 KB pages) above which a round ends with a RESTART checkpoint.
 * PASSIVE ones alone never let the log start over while reads and writes keep coming: the log
 * is never found fully copied when a write begins, and grew by 16 MB a second under the read
 * benchmark, without bound. RESTART waits for readers to leave the log and holds new writes
 * back meanwhile (Pledge's writers wait for that asynchronously, see beginWrite), then the next
 * write starts the log over. It runs right after a PASSIVE round, so it copies little; set this
 * high all the same, since every RESTART pauses the writes (at 32 MB the read benchmark lost 8%).
 */
const RESTART_FRAMES = 16_384;
/** How long a RESTART waits for readers and writers before the round gives up. */
const RESTART_WAIT_MS = 100;
/** The size the log file is cut back to when it starts over (journal_size_limit). */
export const JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024;

// Runs as a CommonJS script in the worker; the driver is loaded by its resolved path, so it
// works wherever Pledge is installed. Errors (another process checkpointing: SQLITE_BUSY) only
// mean this round is skipped.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 0');
db.pragma('journal_size_limit = ${JOURNAL_SIZE_LIMIT}');
const checkpoint = () => {
  try {
    const [{ log }] = db.pragma('wal_checkpoint(PASSIVE)');
    if (log < workerData.restartFrames) return;
    db.pragma('busy_timeout = ${RESTART_WAIT_MS}');
    try { db.pragma('wal_checkpoint(RESTART)'); } finally { db.pragma('busy_timeout = 0'); }
  } catch {}
};
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on('message', () => {
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

/**
 * `onFailure` runs when the thread cannot start or dies: the automatic checkpoint must take over
 * again. `restartFrames`: see RESTART_FRAMES.
 */
export function startCheckpointer(file: string, intervalMs: number, onFailure: () => void, restartFrames = RESTART_FRAMES): Checkpointer {
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { module: sqliteModulePath(), file, intervalMs, restartFrames } });
  let stopping = false;
  worker.on('error', () => {});
  worker.unref();
  const exited = new Promise<void>((resolve) =>
    worker.once('exit', () => {
      if (!stopping) onFailure();
      resolve();
    }),
  );
  return {
    async stop() {
      stopping = true;
      worker.postMessage('stop');
      const timer = setTimeout(() => void worker.terminate(), 2_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
