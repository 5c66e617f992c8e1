import type { Transaction } from 'kysely';
import type { AuditWriter } from '../audit/audit.types.js';
import type { Clock } from '../core/clock.js';
import type { Database } from '../core/db.js';
import type { Tables } from '../core/db.tables.js';
import { isPledgeError, PledgeError } from '../core/errors.js';
import { newId } from '../core/ids.js';
import type { Policy } from '../policy/policy.model.js';
import type { Actor } from '../staff/permissions.js';
import type { IdentityInput, SubjectsService } from '../subjects/subjects.service.js';
import { SubjectClocks } from '../subjects/subject-clocks.js';
import { DatasetPeopleTarget, type DatasetSweeper } from './dataset-people-target.js';
import { DatasetTarget, type DatasetCollectionRef, type DatasetExpirer } from './dataset-target.js';
import { RetentionRules } from './retention.rules.js';
import { retentionStore as store } from './retention.store.js';
import type { RetentionHoldsTable } from './retention.tables.js';
import type { RetentionOutcome, RetentionTarget, SweepContext } from './retention.target.js';
import { VaultTarget } from './vault-target.js';

export interface LegalHold {
  id: string;
  subjectId: string;
  reason: string;
  placedBy: string;
  placedAt: string;
  expiresAt: string | null;
  releasedAt: string | null;
  releasedBy: string | null;
  active: boolean;
}

export interface RetentionReport {
  dryRun: boolean;
  /** The instant the sweep measured every deadline from. */
  at: string;
  outcomes: RetentionOutcome[];
  totals: { rows: number; keptByException: number; skippedByHold: number };
  /** Present when the sweep was stopped before the end (shutdown); the next sweep continues. */
  stopped?: boolean;
}

export interface SweepProgress {
  /** Rows removed so far. */
  done: number;
  /** Rows the sweep expects to remove (counted first). */
  total: number;
  target: string;
}

export interface RetentionServiceDeps {
  database: Database;
  subjects: SubjectsService;
  audit: AuditWriter;
  policy: Policy;
  clock: Clock;
}

// Large enough that per-batch work (statement, audit entry, commit) is small beside the rows;
// small enough that a batch holds SQLite's write lock for a fraction of a second.
export const DEFAULT_BATCH = 10_000;
const LEASE = 'sweep';
/** A sweep renews its lease between steps; one not renewed for this long is taken over. */
const LEASE_MS = 15 * 60_000;
const MAX_REASON = 500;

function hold(row: RetentionHoldsTable, now: string): LegalHold {
  return {
    id: row.id,
    subjectId: row.subject_id,
    reason: row.reason,
    placedBy: row.placed_by,
    placedAt: row.placed_at,
    expiresAt: row.expires_at,
    releasedAt: row.released_at,
    releasedBy: row.released_by,
    active: row.released_at === null && (row.expires_at === null || row.expires_at > now),
  };
}

/**
 * Retention: sweeps that enforce the policy's retention rules on every target (the vault, and
 * the connected datasets added with addDatasets), and legal holds that exempt a subject from
 * sweeps and erasure. See docs/retention.md for the rules in words.
 *
 * One sweep at a time across every process sharing the database: a lease row
 * (retention_leases) is taken with a conditional UPDATE, which works the same on SQLite and
 * PostgreSQL, and renewed between steps; a crashed holder's lease runs out and is taken over.
 */
export class RetentionService {
  readonly rules: RetentionRules;
  private readonly vault: VaultTarget;
  /** Run before the vault, in the order added. */
  private readonly datasetTargets: RetentionTarget[] = [];
  private readonly heldIdentities = new WeakMap<readonly string[], Promise<IdentityInput[][]>>();

  constructor(private readonly deps: RetentionServiceDeps) {
    this.rules = new RetentionRules(deps.policy);
    this.vault = new VaultTarget(deps.subjects, this.rules, (trx, category, removed) => this.recordAnonymized(trx, category, removed));
  }

  /**
   * The targets in the order a sweep runs them: every connected dataset first, the vault
   * last. The vault crypto-shreds closed accounts, and a shredded person's identities — which
   * is how their rows in a dataset are found — can no longer be read.
   */
  targets(): readonly RetentionTarget[] {
    return [...this.datasetTargets, this.vault];
  }

  /** Adds a target (a dataset collection, or another store) to every later sweep, before the vault. */
  addTarget(target: RetentionTarget): void {
    this.datasetTargets.push(target);
  }

  /** Adds a dataset collection with a timestamp column, expired through `datasets.expire`. */
  addDatasetCollection(datasets: DatasetExpirer, collection: DatasetCollectionRef): void {
    this.addTarget(new DatasetTarget(datasets, collection, this.rules, (actor, subjectIds) => this.identitiesOf(actor, subjectIds)));
  }

  /**
   * Adds every datastore the datasets domain declares. For each: its collections' timestamp
   * steps, parents before children (a parent row is judged while the rows referring to it
   * are as the sweep found them), then its sweep by person, which decides knowing what the
   * timestamp steps did.
   */
  addDatasets(datasets: DatasetExpirer & DatasetSweeper & { datastores(): string[] }): void {
    for (const datastore of datasets.datastores()) {
      for (const collection of datasets.layout(datastore)) if (collection.timestamp) this.addDatasetCollection(datasets, collection);
      this.addTarget(
        new DatasetPeopleTarget(datasets, datastore, this.rules, {
          database: this.deps.database,
          clocks: new SubjectClocks(this.deps.database.db),
          identities: (actor, subjectIds) => this.readIdentities(actor, subjectIds),
          heldIdentities: (actor, subjectIds) => this.identitiesOf(actor, subjectIds),
        }),
      );
    }
  }

  /** Held subjects' identities, so their rows in connected datasets can be found and kept. */
  private identitiesOf(actor: Actor, subjectIds: readonly string[]): Promise<IdentityInput[][]> {
    // A sweep's held list is one array for the whole sweep: its identities are read (and
    // audited) once, however many dataset collections ask, in the count and in the run.
    let people = this.heldIdentities.get(subjectIds);
    if (!people) this.heldIdentities.set(subjectIds, (people = this.readIdentities(actor, subjectIds)));
    return people;
  }

  private async readIdentities(actor: Actor, subjectIds: readonly string[]): Promise<IdentityInput[][]> {
    const people: IdentityInput[][] = [];
    for (const subjectId of subjectIds) {
      const identities = await this.deps.subjects.identities(actor, subjectId).catch((error: unknown) => {
        // An erased subject has no identities left to protect.
        if (isPledgeError(error) && (error.code === 'subject_erased' || error.code === 'subject_not_found')) return [];
        throw error;
      });
      people.push(identities.map((identity) => ({ kind: identity.kind as IdentityInput['kind'], value: identity.value })));
    }
    return people;
  }

  private async recordAnonymized(trx: Transaction<Tables>, category: string, removed: Array<{ purpose: string; collected_at: string }>): Promise<void> {
    const counts = new Map<string, { category: string; purpose: string; period: string; rows: number }>();
    for (const row of removed) {
      const period = row.collected_at.slice(0, 7);
      const key = `${row.purpose}\u0000${period}`;
      const entry = counts.get(key) ?? { category, purpose: row.purpose, period, rows: 0 };
      entry.rows += 1;
      counts.set(key, entry);
    }
    await store.addAggregates(trx, [...counts.values()]);
  }

  /** Counts of anonymised values by category, purpose and month of collection. */
  aggregates() {
    return store.aggregates(this.deps.database.db);
  }

  // --- sweeps ----------------------------------------------------------------------------------

  /** What a sweep would do now, changing nothing. */
  preview(actor: Actor): Promise<RetentionReport> {
    return this.run(actor, { dryRun: true });
  }

  /**
   * Runs a sweep (or, with dryRun, counts what it would do). Every removal is audited batch by
   * batch; the sweep as a whole gets one more entry with its totals. Throws
   * retention_sweep_running when another process holds the lease.
   */
  async run(actor: Actor, options: { dryRun?: boolean; batchSize?: number; onProgress?: (progress: SweepProgress) => void; signal?: AbortSignal } = {}): Promise<RetentionReport> {
    const dryRun = options.dryRun ?? false;
    const now = this.deps.clock.now();
    const holder = newId('job');
    const held = await store.heldSubjects(this.deps.database.db, now.toISOString());
    const context: SweepContext = {
      now,
      actor,
      held,
      batchSize: options.batchSize ?? DEFAULT_BATCH,
      signal: options.signal,
      heartbeat: async () => {
        if (dryRun) return;
        const at = this.deps.clock.now();
        if (!(await store.acquireLease(this.deps.database.db, LEASE, holder, at.toISOString(), new Date(at.getTime() + LEASE_MS).toISOString()))) {
          throw new PledgeError('retention_sweep_running', 'another process took over the retention sweep; this one stopped after its last complete batch');
        }
      },
    };
    const outcomes: RetentionOutcome[] = [];
    if (dryRun) {
      for (const target of this.targets()) outcomes.push(...(await target.plan(context)));
      return this.report(true, now, outcomes);
    }
    if (!(await store.acquireLease(this.deps.database.db, LEASE, holder, now.toISOString(), new Date(now.getTime() + LEASE_MS).toISOString()))) {
      throw new PledgeError('retention_sweep_running', 'a retention sweep is already running (in this or another process); try again when it has finished');
    }
    try {
      let total = 0;
      if (options.onProgress) {
        for (const target of this.targets()) total += (await target.plan(context)).reduce((sum, outcome) => sum + outcome.rows, 0);
      }
      let done = 0;
      for (const target of this.targets()) {
        if (options.signal?.aborted) break;
        options.onProgress?.({ done, total, target: target.id });
        outcomes.push(
          ...(await target.apply(context, (rows) => {
            done += rows;
            options.onProgress?.({ done, total: Math.max(total, done), target: target.id });
          })),
        );
      }
      const report = this.report(false, now, outcomes, options.signal?.aborted === true);
      await this.deps.audit.record([
        {
          actor,
          action: 'retention.swept',
          details: { at: report.at, rows: report.totals.rows, keptByException: report.totals.keptByException, skippedByHold: report.totals.skippedByHold, heldSubjects: held.length, targets: this.targets().map((target) => target.id), stopped: report.stopped === true },
        },
      ]);
      return report;
    } finally {
      await store.releaseLease(this.deps.database.db, LEASE, holder);
    }
  }

  private report(dryRun: boolean, now: Date, outcomes: RetentionOutcome[], stopped = false): RetentionReport {
    const totals = { rows: 0, keptByException: 0, skippedByHold: 0 };
    for (const outcome of outcomes) {
      totals.rows += outcome.rows;
      totals.keptByException += outcome.keptByException;
      totals.skippedByHold += outcome.skippedByHold;
    }
    return { dryRun, at: now.toISOString(), outcomes, totals, ...(stopped ? { stopped } : {}) };
  }

  // --- legal holds -----------------------------------------------------------------------------

  /** Is the subject under a legal hold now? Erasure must then be refused or deferred. */
  async isHeld(subjectId: string): Promise<boolean> {
    return store.isHeld(this.deps.database.db, subjectId, this.deps.clock.now().toISOString());
  }

  async placeHold(actor: Actor, subjectId: string, input: { reason: string; expiresAt?: string | undefined }): Promise<LegalHold> {
    const now = this.deps.clock.now();
    const reason = input.reason.trim();
    if (reason.length === 0 || reason.length > MAX_REASON) throw new PledgeError('hold_invalid', `a legal hold needs a reason of 1 to ${MAX_REASON} characters`);
    let expiresAt: string | null = null;
    if (input.expiresAt !== undefined) {
      const expiry = new Date(input.expiresAt);
      if (Number.isNaN(expiry.getTime())) throw new PledgeError('hold_invalid', 'expiresAt must be a date and time (ISO 8601)');
      if (expiry <= now) throw new PledgeError('hold_invalid', 'expiresAt must be in the future');
      expiresAt = expiry.toISOString();
    }
    const subject = await this.deps.subjects.get(subjectId);
    if (subject.status === 'erased') throw new PledgeError('subject_erased', 'the subject was erased; there is nothing left to hold');
    const row: RetentionHoldsTable = { id: newId('hld', now.getTime()), subject_id: subjectId, reason, placed_by: actor.id, placed_at: now.toISOString(), expires_at: expiresAt, released_at: null, released_by: null };
    await this.deps.database.db.transaction().execute(async (trx) => {
      await store.insertHold(trx, row);
      // The reason stays in the hold record: it may name a matter or a person.
      await this.deps.audit.appendWithin(trx, [{ actor, action: 'retention.hold_placed', target: { type: 'subject', id: subjectId }, details: { hold: row.id, expiresAt } }]);
    });
    return hold(row, now.toISOString());
  }

  async releaseHold(actor: Actor, holdId: string): Promise<LegalHold> {
    const now = this.deps.clock.now().toISOString();
    const existing = await store.getHold(this.deps.database.db, holdId);
    if (!existing) throw new PledgeError('hold_not_found', 'no legal hold has this id');
    if (existing.released_at !== null) return hold(existing, now);
    await this.deps.database.db.transaction().execute(async (trx) => {
      await store.releaseHold(trx, holdId, actor.id, now);
      await this.deps.audit.appendWithin(trx, [{ actor, action: 'retention.hold_released', target: { type: 'subject', id: existing.subject_id }, details: { hold: holdId } }]);
    });
    return hold((await store.getHold(this.deps.database.db, holdId))!, now);
  }

  async getHold(holdId: string): Promise<LegalHold> {
    const row = await store.getHold(this.deps.database.db, holdId);
    if (!row) throw new PledgeError('hold_not_found', 'no legal hold has this id');
    return hold(row, this.deps.clock.now().toISOString());
  }

  /** Holds, newest first: those in force, or with `all` also the released and lapsed. */
  async listHolds(filter: { subjectId?: string | undefined; all?: boolean | undefined; limit?: number | undefined } = {}): Promise<LegalHold[]> {
    const now = this.deps.clock.now().toISOString();
    const rows = await store.listHolds(this.deps.database.db, { subjectId: filter.subjectId, activeAt: filter.all ? undefined : now, limit: Math.min(filter.limit ?? 500, 1000) });
    return rows.map((row) => hold(row, now));
  }
}
