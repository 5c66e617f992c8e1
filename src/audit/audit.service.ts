import { hash as oneShotHash } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import type { Clock } from '../core/clock.js';
import type { Database } from '../core/db.js';
import type { Tables } from '../core/db.tables.js';
import { PledgeError } from '../core/errors.js';
import { newId } from '../core/ids.js';
import type { Keyring } from '../core/keyring.js';
import {
  GENESIS_HASH,
  canonicalDetails,
  chainHash,
  checkpointSignatureValid,
  entryMiddle,
  hashEntry,
  linksTo,
  signCheckpoint,
  signingKeyFromSeed,
  validateAuditEvent,
  type SigningKey,
} from './audit.chain.js';
import { appendCtes, auditStore, type AuditCheckpointRow, type AuditEntryRow, type PreparedAppend, type UnchainedEntry } from './audit.store.js';
import type { AuditDetailValue, AuditEvent, AuditWriter, ChainLink, StatementAppend } from './audit.types.js';

export interface AuditServiceOptions {
  /** Sign a checkpoint at every multiple of this seq (default 1000). */
  checkpointEvery?: number;
  /** Also sign one when this long has passed since the last and new entries exist (default 60 s; 0 = never). */
  checkpointIntervalMs?: number;
  /**
   * How long record() waits for more callers before committing (default 0: the commit starts
   * on the next turn of the event loop, and callers arriving while it runs join the next one).
   */
  flushDelayMs?: number;
  /** Most events committed in one group transaction (default 500). */
  maxBatch?: number;
  /** Where failures of background work (interval checkpoints) are reported; default: ignored, retried next interval. */
  onError?: (error: unknown) => void;
}

export type AuditProblem = 'hash_mismatch' | 'broken_link' | 'missing_entry' | 'unexpected_entry' | 'checkpoint_mismatch' | 'bad_signature' | 'head_mismatch' | 'expected_mismatch';

export interface AuditVerifyProgress {
  /** Entries verified so far. */
  entries: number;
  /** The last seq verified. */
  seq: number;
  /** The head when verification started (for a percentage; the chain may grow meanwhile). */
  headSeq: number;
}

export interface AuditVerifyOptions {
  /** Start at this seq, trusting the stored hash of the entry before it (default 1: the whole chain). */
  fromSeq?: number;
  /** Called after each batch. */
  onProgress?: (progress: AuditVerifyProgress) => void;
  /** Entries read per query (default 5000). */
  batchSize?: number;
  /**
   * An entry an earlier verification ended at (its `head`), kept outside the database: it must
   * still be there with this hash. This is what catches a tail cut back consistently (entries
   * and head) to before the next signed checkpoint, which the chain alone cannot show.
   */
  expect?: { seq: number; hash: string };
  /**
   * Stop after the batch during which this many milliseconds have passed, answering
   * `complete: false` and where to go on from (an HTTP request must not run for an hour).
   */
  budgetMs?: number;
}

export interface AuditVerifyResult {
  ok: boolean;
  /** Entries verified (before the first problem, when there is one). */
  entries: number;
  /** Checkpoints whose hash and signature were verified. */
  checkpoints: number;
  firstProblem?: { seq: number; problem: AuditProblem; message: string };
  /** Intact chains: the last entry verified (pass it back as `expect` next time), or null when empty. */
  head?: { seq: number; hash: string } | null;
  /**
   * Intact chains: the entries after the last signed checkpoint, or null when there are none.
   * Removing these together with the head leaves a chain that verifies: only `expect`, or the
   * next checkpoint signed before the removal, shows it.
   */
  unsigned?: { fromSeq: number; toSeq: number; lastCheckpointSeq: number | null } | null;
  /**
   * Present, false, when `budgetMs` ran out: no problem up to `nextSeq` − 1; verify again from
   * `nextSeq` for the rest (the head and the checkpoints past the end are checked at the end).
   */
  complete?: false;
  nextSeq?: number;
}

export interface AuditEntry {
  seq: number;
  id: string;
  at: string;
  actor: { type: string; id: string };
  action: string;
  target?: { type: string; id: string };
  purpose?: string;
  details: Record<string, AuditDetailValue>;
  hash: string;
}

export interface AuditCheckpoint {
  seq: number;
  hash: string;
  signedAt: string;
  keyId: string;
  signature: string;
}

export interface AuditListQuery {
  /** First seq to return (default 1). */
  fromSeq?: number;
  /** 1–500 (default 100). */
  limit?: number;
  targetId?: string;
  action?: string;
}

export interface AuditPage {
  entries: AuditEntry[];
  /** fromSeq of the next page, or null at the end. */
  nextSeq: number | null;
}

/**
 * Group commits that go back to the database's chaining after another writer moved the head
 * this process expected: with several processes appending, a condition that keeps failing
 * would cost a round trip each time; after the pause one more attempt finds out whether this
 * process is alone again.
 */
const AFTER_OWN_HEAD_PAUSE = 16;

interface PendingRecord {
  events: readonly AuditEvent[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * The audit chain: every entry carries the SHA-256 of its content and of the entry before it,
 * so changing, removing, inserting or reordering an entry breaks the chain at that point; the
 * head row catches a cut tail, and Ed25519-signed checkpoints catch a chain rewritten
 * consistently from some point on (the rewriter lacks the signing key).
 *
 *   const audit = new AuditService(database, keyring, systemClock);
 *   await audit.record([{ actor, action: 'data.read', target: { type: 'subject', id }, purpose: 'support',
 *                         details: { categories: ['user.contact.email'] } }]);
 *   await database.db.transaction().execute(async (trx) => {
 *     await subjects.writeWithin(trx, …);
 *     await audit.appendWithin(trx, [{ actor, action: 'data.write', … }]);
 *   });
 *   const { ok, firstProblem } = await audit.verify();
 *
 * Details must never contain personal data: ids, codes, counts, booleans and category names
 * only. Strings over 200 characters, e-mail-like strings and nested objects are refused.
 */
export class AuditService implements AuditWriter {
  private readonly key: SigningKey;
  private readonly checkpointEvery: number;
  private readonly checkpointIntervalMs: number;
  private readonly flushDelayMs: number;
  private readonly maxBatch: number;
  private readonly onError: (error: unknown) => void;

  private pending: PendingRecord[] = [];
  private flushing: Promise<void> | null = null;
  private pendingEvents = 0;
  /** The scheduled flush, when one is scheduled: whether it waits for flushDelayMs, and how to cancel it. */
  private scheduled: { delayed: boolean; cancel: () => void } | null = null;
  private readonly intervalTimer: NodeJS.Timeout | null;
  private lastCheckpointCheck: number;
  private closed = false;
  private readonly background = new Set<Promise<void>>();
  private readonly counters = { records: 0, transactions: 0, events: 0 };
  /**
   * PostgreSQL: whether an append is one statement that hashes in the database
   * (auditStore.appendPostgres). The first one runs in a transaction and is checked against
   * Pledge's own hashing before it commits; if the database cannot do it (no sha256(), before
   * PostgreSQL 11) or hashes other bytes, appends go back to hashing here, for good.
   */
  private chainInDatabase: 'unchecked' | 'checked' | 'off' = 'unchecked';
  /**
   * PostgreSQL: the head this process's last group commit left. While no one else appends (one
   * server process, between the rare writes that append inside their own transaction), the
   * next group commit chains its entries here, after it, and writes them on condition that it
   * is still the head — cheaper for the database than chaining them itself. When another
   * writer moved it, the next appends go back to the database's chaining for a while
   * (AFTER_OWN_HEAD_PAUSE), which does not depend on knowing the head.
   */
  private ownHead: { seq: number; hash: string } | null = null;
  private ownHeadPause = 0;

  constructor(
    private readonly database: Database,
    keyring: Pick<Keyring, 'secret'>,
    private readonly clock: Clock,
    options: AuditServiceOptions = {},
  ) {
    this.key = signingKeyFromSeed(keyring.secret('audit_signing'));
    this.checkpointEvery = positiveInteger(options.checkpointEvery ?? 1000, 'checkpointEvery');
    this.checkpointIntervalMs = Math.max(0, options.checkpointIntervalMs ?? 60_000);
    this.flushDelayMs = Math.max(0, options.flushDelayMs ?? 0);
    this.maxBatch = positiveInteger(options.maxBatch ?? 500, 'maxBatch');
    this.onError = options.onError ?? (() => {});
    this.lastCheckpointCheck = clock.now().getTime();
    if (this.checkpointIntervalMs > 0) {
      this.intervalTimer = setInterval(() => this.inBackground(this.maybeCheckpoint()), this.checkpointIntervalMs);
      this.intervalTimer.unref();
    } else {
      this.intervalTimer = null;
    }
  }

  // --- writing ---------------------------------------------------------------------------------

  /**
   * Appends inside the caller's transaction. Call it as late in the transaction as possible:
   * from here to the commit every other audit append (in every process) waits for the head.
   */
  async appendWithin(trx: Transaction<Tables>, events: readonly AuditEvent[]): Promise<void> {
    for (const event of events) validateAuditEvent(event);
    if (this.database.dialect !== 'postgres' || this.chainInDatabase === 'off' || events.length === 0) {
      await this.append(trx, events);
      return;
    }
    // Checked before the caller commits: a wrong hash throws and the transaction keeps nothing.
    await this.appendInDatabase(trx, events);
    this.chainInDatabase = 'checked';
  }

  /**
   * Appends on its own and resolves once the transaction holding the entries has committed;
   * rejects when it failed (then the caller must not go on to return the data it audits).
   * Concurrent calls share one transaction (group commit).
   */
  record(events: readonly AuditEvent[]): Promise<void> {
    if (this.closed) return Promise.reject(new PledgeError('internal', 'the audit service is closed'));
    try {
      for (const event of events) validateAuditEvent(event);
    } catch (error) {
      return Promise.reject(error);
    }
    if (events.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ events, resolve, reject });
      this.pendingEvents += events.length;
      this.counters.records++;
      this.schedule();
    });
  }

  /** Group-commit counters since start: record() calls, their transactions, and events written by them. */
  stats(): { records: number; transactions: number; events: number } {
    return { ...this.counters };
  }

  /** Returns the head the entries end with (undefined when there were none). */
  private async append(trx: Transaction<Tables>, events: readonly AuditEvent[]): Promise<{ seq: number; hash: string } | undefined> {
    if (events.length === 0) return undefined;
    const head = await auditStore.reserve(trx, events.length);
    const { rows, checkpoints, headHash } = this.prepareAppend(head, events);
    await auditStore.writeEntries(trx, rows, headHash);
    await auditStore.insertCheckpoints(trx, checkpoints);
    return { seq: head.seq + events.length, hash: headHash };
  }

  /**
   * The append as one statement, the database chaining the entries (auditStore.appendPostgres);
   * every hash it computed is checked against serializeEntry() here, and the checkpoints due
   * among the new entries are signed and written after it.
   */
  private async appendInDatabase(executor: Kysely<Tables>, events: readonly AuditEvent[]): Promise<{ seq: number; hash: string }> {
    const { entries, at } = this.unchained(events);
    let chain: ChainLink[];
    try {
      chain = await auditStore.appendPostgres(executor, entries, at);
    } catch (error) {
      // No sha256() in this database: the next append hashes here.
      if (cannotChainInDatabase(error)) this.chainInDatabase = 'off';
      throw error;
    }
    await auditStore.insertCheckpoints(executor, this.checkedChain(entries, at, chain));
    const last = chain[chain.length - 1]!;
    return { seq: last.seq, hash: last.hash };
  }

  /**
   * PostgreSQL, once the database is known to chain as Pledge does: what a caller needs to
   * append `events` with a statement of its own, which writes its rows and the entries together
   * and, run on its own, commits them together — holding the audit head only while it runs,
   * instead of from a transaction's append to its commit. Build the statement around
   * `ctes(guard)` with `parameters` as its first two; then hand the `chain` rows it selected
   * to `settle`, which checks every hash and writes the checkpoints due (an empty chain: the
   * guard did not hold and nothing was appended). Undefined where this is not available: use
   * a transaction and appendWithin.
   */
  statementAppend(events: readonly AuditEvent[]): StatementAppend | undefined {
    // Only ever 'checked' on PostgreSQL.
    if (this.chainInDatabase !== 'checked' || events.length === 0) return undefined;
    for (const event of events) validateAuditEvent(event);
    const { entries, at } = this.unchained(events);
    return {
      ctes: (guard) => appendCtes('$1', '$2', guard),
      parameters: auditStore.appendParameters(entries, at),
      settle: async (chain) => {
        if (chain.length > 0) await auditStore.insertCheckpoints(this.database.db, this.checkedChain(entries, at, chain));
      },
    };
  }

  /** The entries of `events` as the one-statement append takes them: without seq, prev_hash and hash. */
  private unchained(events: readonly AuditEvent[]): { entries: UnchainedEntry[]; at: string } {
    const now = this.clock.now();
    const at = now.toISOString();
    const millis = now.getTime();
    const entries = events.map((event): UnchainedEntry => {
      const fields = entryFields(event, at, millis);
      return { ...fields, middle: entryMiddle(fields) };
    });
    return { entries, at };
  }

  /**
   * The checkpoints due among `chain` (the head it followed, then the new entries) once every
   * link is checked against serializeEntry(). A mismatch turns database chaining off for good;
   * whatever transaction the chain was written in must not commit.
   */
  private checkedChain(entries: readonly UnchainedEntry[], at: string, chain: readonly ChainLink[]): AuditCheckpointRow[] {
    const checkpoints: AuditCheckpointRow[] = [];
    const mismatch = () => {
      this.chainInDatabase = 'off';
      return new DatabaseHashMismatch();
    };
    if (chain.length !== entries.length + 1) throw mismatch();
    for (let i = 1; i < chain.length; i++) {
      const link = chain[i]!;
      const previous = chain[i - 1]!;
      // The middle was made from the very fields the statement stores (with `at`), so this is
      // serializeEntry() of the stored row, without serialising the row again.
      if (link.seq !== previous.seq + 1 || link.hash !== chainHash(link.seq, entries[i - 1]!.middle, previous.hash)) throw mismatch();
      if (link.seq % this.checkpointEvery === 0) checkpoints.push(this.sign(link.seq, link.hash, at));
    }
    return checkpoints;
  }

  /** A group commit on PostgreSQL: one statement when the database chains (see chainInDatabase). */
  private async appendOnPostgres(events: readonly AuditEvent[]): Promise<void> {
    const after = this.ownHead;
    // Forgotten until this append succeeds: a failed one may or may not have moved the head.
    this.ownHead = null;
    if (after && this.ownHeadPause === 0) {
      const prepared = this.prepareAppend(after, events);
      if (await auditStore.appendAfter(this.database.db, after, prepared)) {
        await auditStore.insertCheckpoints(this.database.db, prepared.checkpoints);
        this.ownHead = { seq: after.seq + prepared.rows.length, hash: prepared.headHash };
        return;
      }
      this.ownHeadPause = AFTER_OWN_HEAD_PAUSE;
    } else if (this.ownHeadPause > 0) {
      this.ownHeadPause--;
    }
    this.ownHead = (await this.appendChainedElsewhere(events)) ?? null;
  }

  /** An append that reads the head as it writes: the database chains, or the transaction holds the head. */
  private async appendChainedElsewhere(events: readonly AuditEvent[]): Promise<{ seq: number; hash: string } | undefined> {
    const { db } = this.database;
    if (this.chainInDatabase === 'checked') return this.appendInDatabase(db, events);
    if (this.chainInDatabase === 'unchecked') {
      try {
        const head = await db.transaction().execute((trx) => this.appendInDatabase(trx, events));
        this.chainInDatabase = 'checked';
        return head;
      } catch (error) {
        // appendInDatabase turned chaining off: hash here instead.
        if (!cannotChainInDatabase(error)) throw error;
      }
    }
    return db.transaction().execute((trx) => this.append(trx, events));
  }

  /** The entries that follow `head`, chained, and the checkpoints among them. */
  private prepareAppend(head: { seq: number; hash: string }, events: readonly AuditEvent[]): PreparedAppend {
    const now = this.clock.now();
    const at = now.toISOString();
    const millis = now.getTime();
    const rows: AuditEntryRow[] = new Array(events.length);
    const middles: string[] = new Array(events.length);
    const checkpoints: AuditCheckpointRow[] = [];
    let prevHash = head.hash;
    for (let i = 0; i < events.length; i++) {
      const seq = head.seq + 1 + i;
      const fields = entryFields(events[i]!, at, millis);
      const middle = entryMiddle(fields);
      // The middle is kept: the store sends it on as the row (entryRowJson).
      const hash = chainHash(seq, middle, prevHash);
      rows[i] = { seq, ...fields, prev_hash: prevHash, hash };
      middles[i] = middle;
      prevHash = hash;
      if (seq % this.checkpointEvery === 0) checkpoints.push(this.sign(seq, hash, at));
    }
    return { rows, middles, checkpoints, headHash: prevHash };
  }

  private schedule(): void {
    if (this.flushing) return; // its end schedules the next flush
    const full = this.pendingEvents >= this.maxBatch;
    if (this.scheduled) {
      if (!this.scheduled.delayed || !full) return;
      this.scheduled.cancel(); // a full batch does not wait for the delay
    }
    const run = () => {
      this.scheduled = null;
      this.flushing = this.flush().finally(() => {
        this.flushing = null;
        if (this.pending.length > 0) this.schedule();
      });
    };
    if (this.flushDelayMs > 0 && !full) {
      const timer = setTimeout(run, this.flushDelayMs);
      this.scheduled = { delayed: true, cancel: () => clearTimeout(timer) };
    } else {
      const immediate = setImmediate(run);
      this.scheduled = { delayed: false, cancel: () => clearImmediate(immediate) };
    }
  }

  private async flush(): Promise<void> {
    const batch: PendingRecord[] = [];
    const events: AuditEvent[] = [];
    while (this.pending.length > 0 && (batch.length === 0 || events.length + this.pending[0]!.events.length <= this.maxBatch)) {
      const record = this.pending.shift()!;
      this.pendingEvents -= record.events.length;
      batch.push(record);
      for (const event of record.events) events.push(event);
    }
    try {
      // On SQLite the group commit is one synchronous transaction; on PostgreSQL one statement.
      const sqlite = this.database.sqlite;
      if (sqlite) await sqlite.exclusive((connection) => auditStore.appendSqlite(connection, events.length, (head) => this.prepareAppend(head, events)));
      else await this.appendOnPostgres(events);
    } catch (error) {
      for (const record of batch) record.reject(error);
      return;
    }
    this.counters.transactions++;
    this.counters.events += events.length;
    for (const record of batch) record.resolve();
    if (this.checkpointIntervalMs > 0) this.inBackground(this.maybeCheckpoint());
  }

  private inBackground(work: Promise<unknown>): void {
    const tracked = work.then(
      () => {},
      (error: unknown) => this.onError(error),
    );
    this.background.add(tracked);
    void tracked.finally(() => this.background.delete(tracked));
  }

  // --- checkpoints -----------------------------------------------------------------------------

  /** The Ed25519 public key that verifies checkpoints (SPKI PEM), to publish or keep elsewhere. */
  publicKeyPem(): string {
    return this.key.publicKey.export({ format: 'pem', type: 'spki' }).toString();
  }

  get keyId(): string {
    return this.key.keyId;
  }

  private sign(seq: number, hash: string, signedAt: string): AuditCheckpointRow {
    return { seq, hash, signed_at: signedAt, key_id: this.key.keyId, signature: signCheckpoint(this.key, seq, hash) };
  }

  /** Signs the current head now; null when the chain is empty. Idempotent per seq. */
  async checkpoint(): Promise<AuditCheckpoint | null> {
    const head = await auditStore.head(this.database.db);
    if (!head || head.seq === 0) return null;
    const row = this.sign(head.seq, head.hash, this.clock.now().toISOString());
    await auditStore.insertCheckpoints(this.database.db, [row]);
    this.lastCheckpointCheck = this.clock.now().getTime();
    return { seq: row.seq, hash: row.hash, signedAt: row.signed_at, keyId: row.key_id, signature: row.signature };
  }

  /**
   * Signs the head when checkpointIntervalMs has passed since the last checkpoint (by any
   * process) and entries were added since. Runs on a timer and after group commits.
   */
  async maybeCheckpoint(): Promise<AuditCheckpoint | null> {
    if (this.checkpointIntervalMs <= 0) return null;
    const now = this.clock.now().getTime();
    if (now - this.lastCheckpointCheck < this.checkpointIntervalMs) return null;
    this.lastCheckpointCheck = now;
    const [head, latest] = await Promise.all([auditStore.head(this.database.db), auditStore.latestCheckpoint(this.database.db)]);
    if (!head || head.seq === 0) return null;
    if (latest && (latest.seq >= head.seq || now - Date.parse(latest.signed_at) < this.checkpointIntervalMs)) return null;
    return this.checkpoint();
  }

  // --- reading ---------------------------------------------------------------------------------

  /**
   * Walks the chain in seq order, a batch at a time (constant memory), and reports the first
   * problem: an entry whose content no longer hashes to its hash, a broken link, a gap, a
   * checkpoint that disagrees with the chain or is not signed by this engine's key, or a head
   * that does not match the last entry. Safe while appends go on: it verifies what was
   * committed when it got there.
   */
  async verify(options: AuditVerifyOptions = {}): Promise<AuditVerifyResult> {
    const db = this.database.db;
    const batchSize = Math.max(1, options.batchSize ?? 5000);
    const started = performance.now();
    const publicKey = this.key.publicKey;
    const currentKeyId = this.key.keyId;
    let entries = 0;
    let checkpoints = 0;
    const fail = (seq: number, problem: AuditProblem, message: string): AuditVerifyResult => ({ ok: false, entries, checkpoints, firstProblem: { seq, problem, message } });

    const fromSeq = Math.max(1, Math.floor(options.fromSeq ?? 1));
    let expected = fromSeq;
    let prevHash = GENESIS_HASH;
    let lastCheckpointSeq: number | null = null;
    if (options.expect) {
      const { seq, hash } = options.expect;
      const stored = await auditStore.entryHash(db, seq);
      if (stored === undefined) {
        return fail(seq, 'missing_entry', `entry ${seq}, where an earlier verification ended, is gone: the chain was cut back (entries and head) to before it`);
      }
      if (stored !== hash) return fail(seq, 'expected_mismatch', `entry ${seq} no longer has the hash an earlier verification recorded: the chain up to it was rewritten`);
    }
    const startHead = (await auditStore.head(db))?.seq ?? 0;
    if (fromSeq > 1) {
      // Nothing to verify past the head (the head itself is checked by a full verification).
      if (fromSeq - 1 > startHead) return { ok: true, entries, checkpoints, head: null, unsigned: null };
      const anchor = await auditStore.entryHash(db, fromSeq - 1);
      if (anchor === undefined) return fail(fromSeq - 1, 'missing_entry', `entry ${fromSeq - 1} is missing, so entry ${fromSeq} has nothing to link to`);
      prevHash = anchor;
    }

    let rows = await auditStore.chainAfter(this.database, expected - 1, batchSize);
    for (;;) {
      if (rows.length > 0) {
        const cps = await auditStore.checkpointsBetween(db, expected - 1, rows[rows.length - 1]!.seq);
        let c = 0;
        for (let i = 0; i < rows.length; i++) {
          const row = rows[i]!;
          const seq = row.seq;
          if (seq !== expected) {
            return fail(expected, 'missing_entry', `entry ${expected} is missing: the chain goes from entry ${expected - 1} to entry ${seq}`);
          }
          if (oneShotHash('sha256', row.serialized, 'base64url') !== row.hash || !linksTo(row.serialized, prevHash)) {
            const problem = await this.recheck(seq, prevHash);
            if (problem === 'hash_mismatch') {
              return fail(seq, 'hash_mismatch', `entry ${seq} does not hash to its stored hash: it was changed after it was written`);
            }
            if (problem === 'broken_link') {
              return fail(seq, 'broken_link', `entry ${seq} does not link to entry ${seq - 1}: the entry before it was replaced or rewritten`);
            }
          }
          if (c < cps.length && cps[c]!.seq === seq) {
            const cp = cps[c++]!;
            if (cp.hash !== row.hash) {
              return fail(seq, 'checkpoint_mismatch', `the signed checkpoint at entry ${seq} records another hash: the chain up to entry ${seq} was rewritten after it was signed`);
            }
            if (cp.key_id !== currentKeyId || !checkpointSignatureValid(publicKey, seq, cp.hash, cp.signature)) {
              return fail(seq, 'bad_signature', `the checkpoint at entry ${seq} is not validly signed by the audit key ${currentKeyId}${cp.key_id !== currentKeyId ? ` (it names key ${cp.key_id})` : ''}`);
            }
            checkpoints++;
            lastCheckpointSeq = seq;
          }
          prevHash = row.hash;
          expected = seq + 1;
          entries++;
        }
        options.onProgress?.({ entries, seq: expected - 1, headSeq: startHead });
        if (rows.length === batchSize && options.budgetMs !== undefined && performance.now() - started >= options.budgetMs) {
          return { ok: true, entries, checkpoints, complete: false, nextSeq: expected };
        }
        if (rows.length === batchSize) {
          rows = await auditStore.chainAfter(this.database, expected - 1, batchSize);
          continue;
        }
      }

      // The end of what was committed when the last batch was read. The head is read before
      // looking for more entries: whatever it counts was committed before that look.
      const last = expected - 1;
      const head = await auditStore.head(db);
      if (!head) return fail(last, 'head_mismatch', 'the audit head row is missing');
      if (head.seq > last) {
        rows = await auditStore.chainAfter(this.database, last, batchSize);
        if (rows.length > 0) continue; // appended while verifying
        return fail(last + 1, 'head_mismatch', `the head counts ${head.seq} entries but the chain ends at entry ${last}: entries ${last + 1}–${head.seq} were removed`);
      }
      if (head.seq < last) {
        // Entries and the head commit together, so a committed entry beyond the head was not
        // written by the audit service.
        return fail(head.seq + 1, 'unexpected_entry', `entry ${head.seq + 1} lies beyond the head (entry ${head.seq}): it was added outside the audit service`);
      }
      if (head.hash !== prevHash) {
        return fail(last, 'head_mismatch', `the head's hash is not the hash of entry ${last}`);
      }
      break;
    }

    // A checkpoint beyond the verified end proves entries that are gone — unless the chain
    // has grown since (it was signed together with entries committed after the last read).
    const beyond = (await auditStore.checkpointsAfter(db, expected - 1, 1))[0];
    if (beyond) {
      const head = await auditStore.head(db);
      if (!head || head.seq < beyond.seq) {
        return fail(expected, 'missing_entry', `a signed checkpoint covers entry ${beyond.seq}, but the chain ends at entry ${expected - 1}: entries were removed`);
      }
    }
    const last = expected - 1;
    // Started past the chain's last checkpoint: the one before the start still counts.
    if (lastCheckpointSeq === null && fromSeq > 1) lastCheckpointSeq = (await auditStore.latestCheckpointUpTo(db, last))?.seq ?? null;
    return {
      ok: true,
      entries,
      checkpoints,
      head: last >= 1 ? { seq: last, hash: prevHash } : null,
      unsigned: last > (lastCheckpointSeq ?? 0) ? { fromSeq: (lastCheckpointSeq ?? 0) + 1, toSeq: last, lastCheckpointSeq } : null,
    };
  }

  /**
   * The exact check behind a fast-path failure, on the stored columns and serializeEntry():
   * which problem the entry has, or null when only the database's formatting differed.
   */
  private async recheck(seq: number, prevHash: string): Promise<'hash_mismatch' | 'broken_link' | null> {
    const row = await auditStore.entry(this.database.db, seq);
    if (!row || hashEntry(row) !== row.hash) return 'hash_mismatch';
    return row.prev_hash === prevHash ? null : 'broken_link';
  }

  /** A page of entries in chain order, for the audit log listing. */
  async list(query: AuditListQuery = {}): Promise<AuditPage> {
    const limit = Math.min(500, Math.max(1, Math.floor(query.limit ?? 100)));
    const fromSeq = Math.max(1, Math.floor(query.fromSeq ?? 1));
    const rows = await auditStore.list(this.database.db, {
      fromSeq,
      limit: limit + 1,
      ...(query.targetId !== undefined ? { targetId: query.targetId } : {}),
      ...(query.action !== undefined ? { action: query.action } : {}),
    });
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : rows;
    return { entries: page.map(toEntry), nextSeq: more ? rows[limit]!.seq : null };
  }

  async listCheckpoints(query: { fromSeq?: number; limit?: number } = {}): Promise<AuditCheckpoint[]> {
    const limit = Math.min(500, Math.max(1, Math.floor(query.limit ?? 100)));
    const rows = await auditStore.checkpointsAfter(this.database.db, Math.max(0, Math.floor(query.fromSeq ?? 1) - 1), limit);
    return rows.map((row) => ({ seq: row.seq, hash: row.hash, signedAt: row.signed_at, keyId: row.key_id, signature: row.signature }));
  }

  /** Commits what is pending, stops the timers; later record() calls reject. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.intervalTimer) clearInterval(this.intervalTimer);
    while (this.flushing || this.pending.length > 0) {
      if (this.scheduled) {
        this.scheduled.cancel();
        this.scheduled = null;
      }
      if (!this.flushing) {
        this.flushing = this.flush().finally(() => {
          this.flushing = null;
        });
      }
      await this.flushing;
    }
    await Promise.all(this.background);
  }
}

function toEntry(row: AuditEntryRow): AuditEntry {
  const entry: AuditEntry = {
    seq: row.seq,
    id: row.id,
    at: row.at,
    actor: { type: row.actor_type, id: row.actor_id },
    action: row.action,
    details: JSON.parse(row.details) as Record<string, AuditDetailValue>,
    hash: row.hash,
  };
  if (row.target_type !== null && row.target_id !== null) entry.target = { type: row.target_type, id: row.target_id };
  if (row.purpose !== null) entry.purpose = row.purpose;
  return entry;
}

/** What an event stores, but for its place in the chain (seq, prev_hash) and its hash. */
function entryFields(event: AuditEvent, at: string, millis: number): Omit<AuditEntryRow, 'seq' | 'prev_hash' | 'hash'> {
  return {
    id: newId('aud', millis),
    at,
    actor_type: event.actor.type,
    actor_id: event.actor.id,
    action: event.action,
    target_type: event.target?.type ?? null,
    target_id: event.target?.id ?? null,
    purpose: event.purpose ?? null,
    details: canonicalDetails(event.details),
  };
}

/** The database chained entries to other hashes than serializeEntry() gives (a text encoding it converts, say). */
class DatabaseHashMismatch extends PledgeError {
  constructor() {
    super('internal', 'the database computed another audit hash than Pledge does; appends go back to hashing in Pledge');
  }
}

/** The database cannot chain entries itself: it hashes differently, or has no sha256() (PostgreSQL before 11: 42883). */
function cannotChainInDatabase(error: unknown): boolean {
  return error instanceof DatabaseHashMismatch || (error as { code?: unknown } | null)?.code === '42883';
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new PledgeError('internal', `AuditService option ${name} must be a positive integer`);
  return value;
}
