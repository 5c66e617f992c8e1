import { sql } from 'kysely';
import type { Database } from '../core/db.js';
import type { KeystoreTables } from './subjects.tables.js';
import { loadSqlite } from '../core/sqlite.js';
import { WRITE_LOCK_WAIT_MS } from '../core/sqlite-writes.js';

/**
 * Makes a destroyed data key unrecoverable from a SQLite key store's files, not only absent from
 * its table. A DELETE alone leaves the row's bytes in the page's free space, in the database
 * file (until the page is reused) and in the write-ahead log (every frame that ever held the
 * page, until the log is overwritten): anyone holding the master key and a copy of keys.db or
 * keys.db-wal could unwrap the key and read the "erased" person from pledge.db.
 *
 * - `secure_delete` makes SQLite overwrite deleted content (and freed pages) with zeros, so the
 *   page image written by the erasure no longer holds the key.
 * - A TRUNCATE checkpoint then copies those images into the database file, over the old ones,
 *   and cuts the log to zero bytes: the frames that held the key are gone too.
 *
 * Erasures that arrive together (a retention sweep's batch, many requests in one turn of the
 * event loop) share one checkpoint. The checkpoint runs on a connection of its own without a
 * busy timeout, so it never sleeps on the event loop: when another process holds the file it
 * is tried again, asynchronously, like a write (see beginWrite).
 *
 * On PostgreSQL there is no equivalent (see docs/production.md, "The key store").
 *
 *   const shredder = new KeystoreShredder(database);
 *   await shredder.beforeDelete();   // on the connection that deletes
 *   …delete the rows…
 *   await shredder.afterDelete();    // resolves once the log is truncated
 */
export class KeystoreShredder {
  private prepared: Promise<string | undefined> | undefined;
  private pending: Promise<void> | undefined;
  private retry: NodeJS.Timeout | undefined;

  constructor(private readonly database: Database<KeystoreTables>) {}

  /** Turns secure_delete on (once) on the connection Kysely deletes through. No-op on PostgreSQL. */
  async beforeDelete(): Promise<void> {
    await this.file();
  }

  /** Once the rows are deleted: truncates the log, shared with the erasures that came together. */
  afterDelete(): Promise<void> {
    if (this.database.dialect !== 'sqlite') return Promise.resolve();
    // Joined until the checkpoint starts: a delete committed after that waits for the next one.
    this.pending ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      this.pending = undefined;
      return this.truncateLog();
    });
    return this.pending;
  }

  /** The key store's file ('' for an in-memory one); secure_delete is set on the way. */
  private file(): Promise<string | undefined> {
    if (this.database.dialect !== 'sqlite') return Promise.resolve(undefined);
    this.prepared ??= (async () => {
      const db = this.database.db;
      // Takes effect when the statement is prepared (it is only ever prepared once here).
      await sql`pragma secure_delete = on`.execute(db);
      const { rows } = await sql<{ name: string; file: string }>`pragma database_list`.execute(db);
      return rows.find((row) => row.name === 'main')?.file ?? '';
    })();
    return this.prepared;
  }

  private async truncateLog(): Promise<void> {
    const file = await this.file();
    if (!file) return;
    const deadline = Date.now() + WRITE_LOCK_WAIT_MS;
    for (let attempt = 1; ; attempt++) {
      if (checkpointTruncate(file)) return;
      if (Date.now() >= deadline) break;
      await new Promise<void>((resolve) => setTimeout(resolve, Math.min(attempt, 20)));
    }
    // Another process kept the file (a long read, a backup) for seconds. The erasure stands:
    // the key is deleted and zeroed in its newest page image; the old frames leave the log with
    // the next successful checkpoint, tried again here in the background.
    this.retry ??= setTimeout(() => {
      this.retry = undefined;
      void this.afterDelete();
    }, 1000).unref();
  }
}

type Connection = InstanceType<ReturnType<typeof loadSqlite>>;

/**
 * One TRUNCATE checkpoint attempt, never waiting: true when the log was fully copied and cut.
 * The connection stays open while erasures keep coming (opening one per checkpoint doubled its
 * cost) and closes after a second without any.
 */
function checkpointTruncate(file: string): boolean {
  let entry = checkpointConnections.get(file);
  if (!entry) {
    const connection = new (loadSqlite())(file, { fileMustExist: true });
    connection.pragma('busy_timeout = 0');
    entry = { connection, idle: undefined };
    checkpointConnections.set(file, entry);
  }
  const current = entry;
  clearTimeout(current.idle);
  current.idle = setTimeout(() => {
    checkpointConnections.delete(file);
    current.connection.close();
  }, 1000).unref();
  try {
    const [result] = current.connection.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number; log: number }>;
    return result !== undefined && result.busy === 0 && result.log <= 0;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') return false;
    throw error;
  }
}

const checkpointConnections = new Map<string, { connection: Connection; idle: NodeJS.Timeout | undefined }>();
