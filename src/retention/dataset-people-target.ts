import { createHash } from 'node:crypto';
import type { Database } from '../core/db.js';
import type { FieldFate, PeopleSweepTally, RowExpiry, SweepPerson } from '../datasets/datasets.sweep.js';
import { approximateDays, parseDuration, type Duration } from '../policy/duration.js';
import type { Actor } from '../staff/permissions.js';
import { triggerStart, type SubjectClock, type SubjectClocks, type SubjectTrigger } from '../subjects/subject-clocks.js';
import type { IdentityInput } from '../subjects/subjects.service.js';
import { expiresWithRow, fieldKeep, timestampSteps, type DatasetCollectionRef, type DatasetFieldRef } from './dataset-rules.js';
import type { HeldIdentities } from './dataset-target.js';
import { cutoffFor, type RetentionAction, type RetentionRules, type RetentionTrigger } from './retention.rules.js';
import { retentionStore as store } from './retention.store.js';
import type { RetentionOutcome, RetentionTarget, SweepContext } from './retention.target.js';

/**
 * What retention by person needs of the datasets domain (DatasetsService provides it): the
 * collections of a datastore with their fields, how the datastore is reached, and the sweep
 * of a batch of people (one transaction per batch, audited).
 */
export interface DatasetSweeper {
  layout(datastoreId: string): Array<DatasetCollectionRef & { timestamp: string | undefined; fields: DatasetFieldRef[]; leadsOn: boolean }>;
  reach(datastoreId: string): 'sql' | 'http';
  sweepPeople(
    datastoreId: string,
    people: readonly SweepPerson[],
    options: { dryRun: boolean; actor: Actor; expiry: ReadonlyMap<string, RowExpiry>; expiryPending?: boolean; held?: ReadonlyArray<IdentityInput[]>; asIfReleased?: boolean },
  ): Promise<{ tally: PeopleSweepTally[] }>;
}

/** Identities of subjects, one list each in the order asked, read through the vault (audited). */
export type SubjectIdentities = (actor: Actor, subjectIds: readonly string[]) => Promise<IdentityInput[][]>;

/** People per batch: one transaction in the datastore holds their rows locked. */
const PEOPLE_PER_BATCH = 100;
/** A person swept before, in the same state, is walked again after this long, for rows added since. */
const RESWEEP_AFTER: Duration = { years: 0, months: 0, weeks: 0, days: 30, hours: 0 };
/** Passes over the subjects, in this order; a person both closed and inactive is swept in the first. */
const TRIGGERS: readonly SubjectTrigger[] = ['account_closed', 'last_activity'];

interface Scope {
  /** Per collection, the fields that follow the person (the others expire with the row or follow no rule). */
  collections: Array<{ name: string; exception: string | undefined; leadsOn: boolean; fields: DatasetFieldRef[] }>;
  expiry: Map<string, RowExpiry>;
  lines: Map<string, Line>;
  /** The earliest time after its trigger anything can be due, per trigger. */
  earliest: Map<SubjectTrigger, Duration>;
}

interface Line {
  rule: string;
  collection: string;
  trigger: RetentionTrigger;
  action: RetentionAction;
  categories: string[];
  exception: string | undefined;
  rows: number;
  keptByException: number;
  skippedByHold: number;
  referenced: number;
  people: number;
  unchanged: number;
}

interface Fated {
  subject: SubjectClock;
  fates: Map<string, Map<string, FieldFate>>;
  digest: string;
  /** Lines (rule and collection) with something past its rule for this person. */
  lines: Set<string>;
}

const lineKey = (rule: string, collection: string) => `${rule}\u0000${collection}`;

/**
 * A connected datastore's retention by person: rules counting from a person's last activity
 * or closed account reach the person's rows through their identities. For each trigger the
 * subjects past it are read in batches (SubjectClocks, along an index); for each person the
 * fate of every field that follows the person is decided from the rule governing it for the
 * person's kinds (dataset-rules.ts); the people with something due have their identities
 * read through the vault (audited) and their rows swept by the datasets domain, one
 * transaction per batch, as an erasure limited to those fields.
 *
 * A person whose fates are what they were at their last sweep is not walked again (nor
 * their identities read) until RESWEEP_AFTER has passed: the state of each person's sweep
 * is kept in retention_dataset_people. People under a legal hold are not swept; their rows
 * are counted as skipped by hold, and no one else's sweep changes a row of theirs.
 *
 * Runs after the collection's timestamp steps (DatasetTarget) and before the vault, whose
 * crypto-shredding destroys the identities this target needs.
 */
export class DatasetPeopleTarget implements RetentionTarget {
  readonly id: string;
  private ranks: Map<string, number> | undefined;

  constructor(
    private readonly datasets: DatasetSweeper,
    private readonly datastore: string,
    private readonly rules: RetentionRules,
    private readonly deps: { database: Database; clocks: SubjectClocks; identities: SubjectIdentities; heldIdentities: HeldIdentities },
  ) {
    this.id = `dataset:${datastore}`;
  }

  plan(context: SweepContext): Promise<RetentionOutcome[]> {
    return this.run(context, true);
  }

  apply(context: SweepContext, onProgress: (rows: number) => void): Promise<RetentionOutcome[]> {
    return this.run(context, false, onProgress);
  }

  private scope(now: Date): Scope {
    const scope: Scope = { collections: [], expiry: new Map(), lines: new Map(), earliest: new Map() };
    for (const ref of this.datasets.layout(this.datastore)) {
      if (ref.timestamp) {
        const expiry: { wholeRow?: RowExpiry['wholeRow']; fields?: Map<string, { before: Date; action: RetentionAction }> } = {};
        for (const step of timestampSteps(this.rules, ref).steps) {
          const before = cutoffFor(now, step.until);
          if (step.wholeRow) expiry.wholeRow = { before, action: step.action };
          else for (const field of step.fields ?? []) (expiry.fields ??= new Map()).set(field, { before, action: step.action });
        }
        if (expiry.wholeRow || expiry.fields) scope.expiry.set(ref.collection, expiry);
      }
      const fields = ref.fields.filter((field) => !expiresWithRow(this.rules, field.category, ref.timestamp));
      scope.collections.push({ name: ref.collection, exception: ref.exception, leadsOn: ref.leadsOn, fields });
      for (const field of fields) {
        for (const { resolved } of this.rules.partitions(field.category)) {
          const { trigger, id, action } = resolved.rule;
          if (trigger === 'collected') continue;
          const key = lineKey(id, ref.collection);
          const line = scope.lines.get(key) ?? { rule: id, collection: ref.collection, trigger, action, categories: [], exception: undefined, rows: 0, keptByException: 0, skippedByHold: 0, referenced: 0, people: 0, unchanged: 0 };
          if (!line.categories.includes(field.category)) line.categories.push(field.category);
          line.exception ??= fieldKeep(this.rules, resolved, field.exception ?? ref.exception).exception;
          scope.lines.set(key, line);
          const earliest = scope.earliest.get(trigger);
          if (!earliest || approximateDays(resolved.duration) < approximateDays(earliest)) scope.earliest.set(trigger, resolved.duration);
        }
      }
    }
    return scope;
  }

  /** Each field's fate for this person at `now`; lines with something past their rule. */
  private fated(scope: Scope, subject: SubjectClock, cutoff: (duration: Duration) => string): Fated {
    const decided: Array<{ collection: Scope['collections'][number]; field: DatasetFieldRef; fate: Exclude<FieldFate, { fate: 'keep' }>; clock: string }> = [];
    for (const collection of scope.collections) {
      for (const field of collection.fields) {
        const resolved = this.rules.ruleFor(field.category, subject.kinds);
        if (!resolved || resolved.rule.trigger === 'collected') continue;
        const started = triggerStart(resolved.rule.trigger, subject);
        if (started === undefined) continue;
        const keep = fieldKeep(this.rules, resolved, field.exception ?? collection.exception);
        let fate: Exclude<FieldFate, { fate: 'keep' }>;
        if (started <= cutoff(keep.until)) fate = { fate: 'erase', rule: resolved.rule.id, action: resolved.rule.action };
        else if (keep.exception && started <= cutoff(resolved.duration)) fate = { fate: 'restrict', rule: resolved.rule.id, exception: keep.exception };
        else continue;
        decided.push({ collection, field, fate, clock: `${resolved.rule.trigger}=${started}` });
      }
    }
    // While an exception keeps some of the person's rows, the identities the walk starts from
    // stay with them (restricted too): they are how the sweep finds those rows when the
    // exception ends. Rows the walk goes no further from lose theirs at once.
    const keeping = decided.find((entry) => entry.fate.fate === 'restrict')?.fate;
    if (keeping?.fate === 'restrict') {
      for (const entry of decided) {
        if (entry.fate.fate === 'erase' && entry.field.identity && entry.collection.leadsOn) entry.fate = { fate: 'restrict', rule: entry.fate.rule, exception: keeping.exception };
      }
    }
    const fates = new Map<string, Map<string, FieldFate>>();
    const lines = new Set<string>();
    for (const { collection, field, fate } of decided) {
      let byField = fates.get(collection.name);
      if (!byField) fates.set(collection.name, (byField = new Map()));
      byField.set(field.name, fate);
      lines.add(lineKey(fate.rule, collection.name));
    }
    const digest = createHash('sha256')
      .update(JSON.stringify([[...new Set(decided.map((entry) => entry.clock))].sort(), decided.map(({ collection, field, fate }) => `${collection.name}.${field.name}=${JSON.stringify(fate)}`).sort()]))
      .digest('hex');
    return { subject, fates, digest, lines };
  }

  private async run(context: SweepContext, dryRun: boolean, onProgress?: (rows: number) => void): Promise<RetentionOutcome[]> {
    const scope = this.scope(context.now);
    if (scope.lines.size === 0) return [];
    if (this.datasets.reach(this.datastore) === 'http') {
      return [...scope.lines.values()].map((line) => ({
        ...this.outcome(line),
        action: 'keep' as const,
        note: 'reached over HTTP, whose protocol erases a person\'s data whole: rules counting from the person are not applied here',
      }));
    }
    const cutoffs = new Map<string, string>();
    const cutoff = (duration: Duration) => {
      const key = JSON.stringify(duration);
      let value = cutoffs.get(key);
      if (value === undefined) cutoffs.set(key, (value = cutoffFor(context.now, duration).toISOString()));
      return value;
    };
    const held = new Set(context.held);
    const heldPeople = context.held.length > 0 ? await this.deps.heldIdentities(context.actor, context.held) : [];
    const batch = Math.max(1, Math.min(context.batchSize, PEOPLE_PER_BATCH));

    if (context.held.length > 0) await this.countHeld(scope, context, dryRun, cutoff, heldPeople);

    const resweep = cutoffFor(context.now, RESWEEP_AFTER).toISOString();
    const passes = TRIGGERS.filter((trigger) => scope.earliest.has(trigger));
    for (const [index, trigger] of passes.entries()) {
      const earlier = passes.slice(0, index);
      let after: SubjectClock | undefined;
      for (;;) {
        if (context.signal?.aborted) break;
        const page = await this.deps.clocks.pastTrigger(trigger, cutoff(scope.earliest.get(trigger)!), { limit: batch, after });
        if (page.length === 0) break;
        after = page.at(-1);
        const candidates = page
          .filter((subject) => !held.has(subject.id))
          // Swept in an earlier pass of this sweep.
          .filter((subject) => !earlier.some((other) => (triggerStart(other, subject) ?? '\uffff') <= cutoff(scope.earliest.get(other)!)))
          .map((subject) => this.fated(scope, subject, cutoff))
          .filter((person) => person.lines.size > 0);
        const recorded = await store.sweptPeople(this.deps.database.db, this.datastore, candidates.map((person) => person.subject.id));
        const due: Fated[] = [];
        for (const person of candidates) {
          const last = recorded.get(person.subject.id);
          const unchanged = last !== undefined && last.state === person.digest && last.swept_at > resweep;
          for (const key of person.lines) {
            const line = scope.lines.get(key)!;
            line.people += 1;
            if (unchanged) line.unchanged += 1;
          }
          if (!unchanged) due.push(person);
        }
        if (due.length > 0) {
          if (!dryRun) await context.heartbeat();
          const identities = await this.deps.identities(context.actor, due.map((person) => person.subject.id));
          const people: SweepPerson[] = due.map((person, position) => ({ subject: person.subject.id, identities: identities[position]!, fates: person.fates }));
          const { tally } = await this.datasets.sweepPeople(this.datastore, people, { dryRun, actor: context.actor, expiry: scope.expiry, expiryPending: dryRun, held: heldPeople });
          const rows = this.add(scope, tally);
          if (!dryRun) {
            const stamp = context.now.toISOString();
            await store.recordSweptPeople(
              this.deps.database.db,
              due.map((person) => ({ datastore: this.datastore, subject_id: person.subject.id, state: person.digest, swept_at: stamp })),
            );
            if (rows > 0) onProgress?.(rows);
          }
        }
        if (page.length < batch) break;
      }
    }
    return [...scope.lines.values()].map((line) => this.outcome(line));
  }

  /** Rows of held people that would change were they not held: counted, never swept. */
  private async countHeld(scope: Scope, context: SweepContext, dryRun: boolean, cutoff: (duration: Duration) => string, heldPeople: IdentityInput[][]): Promise<void> {
    const found = new Map<string, SubjectClock>();
    for (const trigger of TRIGGERS) {
      const earliest = scope.earliest.get(trigger);
      if (!earliest) continue;
      for (const subject of await this.deps.clocks.pastTrigger(trigger, cutoff(earliest), { limit: context.held.length, only: context.held })) found.set(subject.id, subject);
    }
    const people: SweepPerson[] = [];
    for (const [index, subjectId] of context.held.entries()) {
      const subject = found.get(subjectId);
      if (!subject) continue;
      const person = this.fated(scope, subject, cutoff);
      if (person.lines.size > 0) people.push({ subject: subjectId, identities: heldPeople[index] ?? [], fates: person.fates });
    }
    if (people.length === 0) return;
    // A dry run of their sweep, as it would be after this sweep's timestamp steps.
    const { tally } = await this.datasets.sweepPeople(this.datastore, people, { dryRun: true, actor: context.actor, expiry: scope.expiry, expiryPending: dryRun, held: heldPeople, asIfReleased: true });
    for (const entry of tally) {
      const rows = entry.deleted + entry.updated;
      if (rows > 0) this.line(scope, this.attribute(entry.changedBy), entry.collection).skippedByHold += rows;
    }
  }

  /** Adds a batch's tally to the lines; returns the rows changed. */
  private add(scope: Scope, tally: readonly PeopleSweepTally[]): number {
    let changed = 0;
    for (const entry of tally) {
      const rows = entry.deleted + entry.updated;
      changed += rows;
      if (rows > 0 || entry.referenced > 0) {
        const line = this.line(scope, this.attribute(entry.changedBy), entry.collection);
        line.rows += rows;
        line.referenced += entry.referenced;
      }
      if (entry.kept > 0) this.line(scope, this.attribute(entry.keptBy), entry.collection).keptByException += entry.kept;
    }
    return changed;
  }

  /** A row changed under several rules counts once, under the rule keeping data longest (the first in the policy on a tie). */
  private attribute(rules: readonly string[]): string {
    return [...rules].sort((a, b) => this.rank(a) - this.rank(b))[0] ?? '—';
  }

  private rank(id: string): number {
    let ranks = this.ranks;
    if (!ranks) {
      const ordered = this.rules.policy.document.retention
        .map((rule, index) => ({ id: rule.id, index, days: approximateDays(parseDuration(rule.duration)!) }))
        .sort((a, b) => b.days - a.days || a.index - b.index);
      this.ranks = ranks = new Map(ordered.map((rule, position) => [rule.id, position]));
    }
    return ranks.get(id) ?? Number.MAX_SAFE_INTEGER;
  }

  private line(scope: Scope, rule: string, collection: string): Line {
    const key = lineKey(rule, collection);
    let line = scope.lines.get(key);
    if (!line) {
      const declared = this.rules.policy.document.retention.find((candidate) => candidate.id === rule);
      line = { rule, collection, trigger: declared?.trigger ?? 'last_activity', action: declared?.action ?? 'delete', categories: [], exception: undefined, rows: 0, keptByException: 0, skippedByHold: 0, referenced: 0, people: 0, unchanged: 0 };
      scope.lines.set(key, line);
    }
    return line;
  }

  private outcome(line: Line): RetentionOutcome {
    const notes: string[] = [];
    if (line.people > 0) notes.push(`${line.people.toLocaleString('en')} people past the rule${line.unchanged > 0 ? ` (${line.unchanged.toLocaleString('en')} unchanged since their last sweep)` : ''}`);
    if (line.referenced > 0) notes.push(`${line.referenced.toLocaleString('en')} row(s) still referred to by other rows: fields erased, not deleted`);
    return {
      rule: line.rule,
      target: `dataset:${this.datastore}/${line.collection}`,
      category: line.categories.join(', '),
      action: line.action,
      trigger: line.trigger,
      rows: line.rows,
      keptByException: line.keptByException,
      skippedByHold: line.skippedByHold,
      ...(line.exception ? { exception: line.exception } : {}),
      ...(notes.length > 0 ? { note: notes.join('; ') } : {}),
    };
  }
}
