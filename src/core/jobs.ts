import { hostname } from 'node:os';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Clock } from './clock.js';
import type { Tables } from './db.tables.js';
import type { Database } from './db.js';
import { isPledgeError } from './errors.js';
import { newId } from './ids.js';
import type { Logger } from './logger.js';

/**
 * Durable background work: a job is a row in the `jobs` table, so it survives a crash or a
 * restart, and several `pledge serve` processes sharing one PostgreSQL never run the same job
 * at once.
 *
 * - A job is claimed with a lease: one UPDATE … RETURNING marks it running for this process
 *   until `lease_until` (PostgreSQL picks the row with FOR UPDATE SKIP LOCKED, so concurrent
 *   claimers skip each other's rows instead of waiting; SQLite has a single writer and runs the
 *   statement atomically). While the handler works, the lease is extended; a process that
 *   dies (kill -9) stops extending it, and once it runs out another process claims the job.
 * - A handler that throws is retried with exponential backoff up to `maxAttempts`; then the job
 *   is `failed` and the kind's `exhausted` hook runs.
 * - Delivery is at least once: a handler may run again after a crash, so handlers make their
 *   effect idempotent (check what is already done before doing it).
 * - Payloads are JSON with ids only — never personal data — and errors are stored as codes.
 *
 *   const jobs = new JobRunner(database, clock, logger);
 *   jobs.register('mail.send', { run: async (job) => send(job.payload.messageId) });
 *   await database.db.transaction().execute(async (trx) => {
 *     await saveMessage(trx, message);
 *     await jobs.enqueue(trx, { kind: 'mail.send', payload: { messageId: message.id } });
 *   });
 *   jobs.start();            // pledge serve: polls until stop()
 *   await jobs.runDue();     // tests and CLI commands: run everything due now, then return
 */
export type JobState = 'queued' | 'running' | 'done' | 'failed';

export interface JobsTable {
  id: string;
  kind: string;
  /** JSON of ids and codes: never personal data. */
  payload: string;
  state: JobState;
  attempts: number;
  max_attempts: number;
  run_at: string;
  lease_owner: string | null;
  lease_until: string | null;
  /** An error code (never a message: messages may quote data). */
  last_error: string | null;
  /** At most one job per key ever exists: enqueueing it again does nothing. */
  dedupe_key: string | null;
  created_at: string;
  updated_at: string;
}

export interface JobTables {
  jobs: JobsTable;
}

type Executor = Kysely<Tables> | Transaction<Tables>;

export type JobPayload = Record<string, string | number | boolean | null>;

export interface Job {
  id: string;
  kind: string;
  payload: JobPayload;
  /** 1 on the first run. */
  attempt: number;
  maxAttempts: number;
}

export interface JobKind {
  run(job: Job): Promise<void>;
  /** Called once when the job has failed its last attempt (or failed permanently). */
  exhausted?(job: Job, errorCode: string): Promise<void>;
}

export interface EnqueueInput {
  kind: string;
  payload: JobPayload;
  runAt?: Date;
  maxAttempts?: number;
  dedupeKey?: string;
}

export interface JobRunnerOptions {
  /** Names this process in `lease_owner`; default host:pid:random. */
  owner?: string;
  /** How long a claim lasts without being extended (default 60 s). */
  leaseMs?: number;
  /** How often an idle runner looks for work (default 1 s). */
  pollMs?: number;
  /** First retry delay; doubled each attempt, capped at maxBackoffMs (default 2 s, 10 min). */
  backoffMs?: number;
  maxBackoffMs?: number;
  defaultMaxAttempts?: number;
  /** Done jobs are deleted this long after they finished (default 7 days); failed ones are kept. */
  keepDoneMs?: number;
}

/** Thrown by a handler when retrying cannot help (the job fails at once). */
export class PermanentJobError extends Error {
  constructor(readonly code: string) {
    super(code);
    this.name = 'PermanentJobError';
  }
}

export function errorCode(error: unknown): string {
  if (isPledgeError(error)) return error.code;
  if (error instanceof PermanentJobError) return error.code;
  const code = (error as { code?: unknown })?.code;
  return typeof code === 'string' && /^[A-Za-z0-9_.:-]{1,64}$/.test(code) ? code : 'error';
}

/** Delay before attempt `attempt + 1`: doubling, capped, with ±20 % jitter so retries spread. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const plain = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(plain * (0.8 + 0.4 * random()));
}

export class JobRunner {
  readonly owner: string;
  private readonly kinds = new Map<string, JobKind>();
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly defaultMaxAttempts: number;
  private readonly schedules: Array<{ kind: string; everyMs: number }> = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;
  private lastIdTime = 0;
  private lastPurge = 0;
  private readonly keepDoneMs: number;

  constructor(
    private readonly database: Database,
    private readonly clock: Clock,
    private readonly logger?: Logger,
    options: JobRunnerOptions = {},
  ) {
    this.owner = options.owner ?? `${hostname()}:${process.pid}:${newId('job').slice(-6)}`;
    this.leaseMs = options.leaseMs ?? 60_000;
    this.pollMs = options.pollMs ?? 1000;
    this.backoffMs = options.backoffMs ?? 2000;
    this.maxBackoffMs = options.maxBackoffMs ?? 10 * 60_000;
    this.defaultMaxAttempts = options.defaultMaxAttempts ?? 8;
    this.keepDoneMs = options.keepDoneMs ?? 7 * 86_400_000;
  }

  /** Deletes done jobs that finished before `before` (dedupe keys of periodic jobs go with them). */
  async purgeDone(before: Date): Promise<number> {
    const result = await this.database.db.deleteFrom('jobs').where('state', '=', 'done').where('updated_at', '<', before.toISOString()).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  register(kind: string, handler: JobKind): void {
    if (this.kinds.has(kind)) throw new Error(`job kind ${kind} is registered twice`);
    this.kinds.set(kind, handler);
  }

  /**
   * Runs `kind` (with an empty payload) every `everyMs` while the runner polls. Each period's
   * job has a dedupe key, so several processes together enqueue it once per period.
   */
  every(kind: string, everyMs: number): void {
    this.schedules.push({ kind, everyMs });
  }

  /** Adds a job; pass the caller's transaction so the job exists only if its cause commits. */
  async enqueue(executor: Executor, input: EnqueueInput): Promise<string | undefined> {
    const now = this.clock.now().toISOString();
    // Ids carry their time and break ties in the claim order: kept increasing within a process,
    // jobs enqueued together and due together run in the order they were enqueued.
    this.lastIdTime = Math.max(this.lastIdTime + 1, this.clock.now().getTime());
    const id = newId('job', this.lastIdTime);
    const result = await executor
      .insertInto('jobs')
      .values({
        id,
        kind: input.kind,
        payload: JSON.stringify(input.payload),
        state: 'queued',
        attempts: 0,
        max_attempts: input.maxAttempts ?? this.defaultMaxAttempts,
        run_at: (input.runAt ?? this.clock.now()).toISOString(),
        lease_owner: null,
        lease_until: null,
        last_error: null,
        dedupe_key: input.dedupeKey ?? null,
        created_at: now,
        updated_at: now,
      })
      .onConflict((conflict) => conflict.column('dedupe_key').doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0n) > 0 ? id : undefined;
  }

  /**
   * Claims one due job of a registered kind for this process, or returns undefined. Due: queued
   * with run_at reached, or running under a lease that ran out (its process died).
   */
  async claim(): Promise<Job | undefined> {
    const kinds = [...this.kinds.keys()];
    if (kinds.length === 0) return undefined;
    const now = this.clock.now();
    const stamp = now.toISOString();
    const until = new Date(now.getTime() + this.leaseMs).toISOString();
    const lock = this.database.dialect === 'postgres' ? sql`for update skip locked` : sql``;
    const db = this.database.db;
    const result = await sql<JobsTable>`
      update jobs set state = 'running', attempts = attempts + 1, lease_owner = ${this.owner}, lease_until = ${until}, updated_at = ${stamp}
      where id = (
        select id from jobs
        where kind in (${sql.join(kinds)})
          and ((state = 'queued' and run_at <= ${stamp}) or (state = 'running' and lease_until < ${stamp}))
        order by run_at, id
        limit 1
        ${lock}
      )
      and ((state = 'queued' and run_at <= ${stamp}) or (state = 'running' and lease_until < ${stamp}))
      returning *`.execute(db);
    const row = result.rows[0];
    if (!row) return undefined;
    return { id: row.id, kind: row.kind, payload: JSON.parse(row.payload) as JobPayload, attempt: Number(row.attempts), maxAttempts: Number(row.max_attempts) };
  }

  /** Marks a claimed job done; false when this process no longer held its lease. */
  async complete(job: Job): Promise<boolean> {
    const stamp = this.clock.now().toISOString();
    const result = await this.database.db
      .updateTable('jobs')
      .set({ state: 'done', lease_owner: null, lease_until: null, last_error: null, updated_at: stamp })
      .where('id', '=', job.id)
      .where('lease_owner', '=', this.owner)
      .where('state', '=', 'running')
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /**
   * Records a failed attempt: the job is queued again after a backoff, or marked failed when
   * it has no attempts left (or the error is permanent). Returns the new state.
   */
  async fail(job: Job, error: unknown): Promise<JobState | undefined> {
    const code = errorCode(error);
    const now = this.clock.now();
    const final = error instanceof PermanentJobError || job.attempt >= job.maxAttempts;
    const result = await this.database.db
      .updateTable('jobs')
      .set({
        state: final ? 'failed' : 'queued',
        run_at: final ? now.toISOString() : new Date(now.getTime() + backoffDelay(job.attempt, this.backoffMs, this.maxBackoffMs)).toISOString(),
        lease_owner: null,
        lease_until: null,
        last_error: code,
        updated_at: now.toISOString(),
      })
      .where('id', '=', job.id)
      .where('lease_owner', '=', this.owner)
      .where('state', '=', 'running')
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) === 0) return undefined;
    if (final) await this.kinds.get(job.kind)?.exhausted?.(job, code);
    return final ? 'failed' : 'queued';
  }

  private async extendLease(job: Job): Promise<void> {
    const until = new Date(this.clock.now().getTime() + this.leaseMs).toISOString();
    await this.database.db.updateTable('jobs').set({ lease_until: until }).where('id', '=', job.id).where('lease_owner', '=', this.owner).where('state', '=', 'running').execute();
  }

  /** Runs one claimed job through its handler, extending the lease while it works. */
  private async execute(job: Job): Promise<void> {
    const handler = this.kinds.get(job.kind)!;
    const heartbeat = setInterval(() => {
      this.extendLease(job).catch(() => {});
    }, Math.max(50, Math.floor(this.leaseMs / 3)));
    heartbeat.unref();
    try {
      await handler.run(job);
      clearInterval(heartbeat);
      await this.complete(job);
    } catch (error) {
      clearInterval(heartbeat);
      const state = await this.fail(job, error);
      this.logger?.warn({ job: job.id, kind: job.kind, attempt: job.attempt, code: errorCode(error), state }, 'job attempt failed');
    }
  }

  private async enqueueSchedules(): Promise<void> {
    const now = this.clock.now().getTime();
    for (const { kind, everyMs } of this.schedules) {
      const period = Math.floor(now / everyMs);
      await this.enqueue(this.database.db, { kind, payload: {}, dedupeKey: `every:${kind}:${period}`, maxAttempts: 1 });
    }
  }

  /** Runs due jobs one after another until none is left; returns how many ran. */
  async runDue(limit = Number.POSITIVE_INFINITY): Promise<number> {
    let count = 0;
    while (count < limit) {
      const job = await this.claim();
      if (!job) break;
      await this.execute(job);
      count++;
    }
    return count;
  }

  /** Polls for work until stop(). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const tick = async () => {
      try {
        await this.enqueueSchedules();
        const now = this.clock.now().getTime();
        if (now - this.lastPurge > 3_600_000) {
          this.lastPurge = now;
          await this.purgeDone(new Date(now - this.keepDoneMs));
        }
        while (!this.stopped) {
          const job = await this.claim();
          if (!job) break;
          await this.execute(job);
        }
      } catch (error) {
        this.logger?.error({ code: errorCode(error) }, 'job polling failed');
      }
    };
    const loop = () => {
      if (this.stopped) return;
      this.running = tick().finally(() => {
        if (!this.stopped) {
          this.timer = setTimeout(loop, this.pollMs);
          this.timer.unref();
        }
      });
    };
    loop();
  }

  /** Stops polling and waits for the job in hand (its lease is released by completion). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /** The stored state of a job (tests, diagnostics). */
  async get(id: string): Promise<JobsTable | undefined> {
    return this.database.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
  }
}
