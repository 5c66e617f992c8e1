import type { IdentityInput } from '../subjects/subjects.service.js';
import { emptyPlan, hasValue, isTrue, referredRows, type FieldEraser, type RowPlan } from './datasets.erasure.js';
import type { CollectionModel, DatasetModel } from './datasets.model.js';
import { walk } from './datasets.planner.js';
import type { Row, SqlSession } from './datasets.sql.js';

/**
 * Retention by person: the rows a person's identities reach, changed only as far as the
 * retention rules that count from the person (their last activity, the closing of their
 * account) allow. It is an erasure limited to some fields — the same walk, the same
 * strategies, the same order of writes — with one more care: a row is deleted only when
 * every field of it may go and nothing left behind still refers to it.
 *
 * Which fields may go is decided by the retention domain (the datasets domain knows no
 * rules); the planner receives one fate per field and person.
 */
export type FieldFate =
  /** Past its rule and every exception: erased with the field's strategy (or with the row). */
  | { fate: 'erase'; rule: string; action: 'delete' | 'anonymize' }
  /** Past its rule, kept by an exception: the row stays, flagged in its restrict column. */
  | { fate: 'restrict'; rule: string; exception: string }
  /** Not due: the row stays for it. */
  | { fate: 'keep' };

/**
 * What the same sweep does to a collection by its timestamp column, the same for every
 * row's owner (retention's timestamp steps run before the steps by person). A field it
 * erases does not keep a row from going; a whole row it deletes does not keep the row it
 * refers to.
 */
export interface RowExpiry {
  wholeRow?: { before: Date; action: 'delete' | 'anonymize' };
  fields?: ReadonlyMap<string, { before: Date; action: 'delete' | 'anonymize' }>;
}

export interface SweepPerson {
  /** The vault subject, named in the audit entry. */
  subject: string;
  identities: IdentityInput[];
  /** collection → field → fate. A field not listed stays, unless its collection's expiry names it. */
  fates: ReadonlyMap<string, ReadonlyMap<string, FieldFate>>;
}

/** Rows changed, grouped by collection and by the rules that changed (or kept) them. */
export interface PeopleSweepTally {
  collection: string;
  /** Rules with a field erased in the rows (for a delete: every rule with a field in the row). */
  changedBy: string[];
  /** Rules whose exception keeps fields of the rows. */
  keptBy: string[];
  deleted: number;
  updated: number;
  /** Rows with fields kept, restricted, under an exception. */
  kept: number;
  /** Rows whose every field went, left in place because rows elsewhere still refer to them. */
  referenced: number;
}

export interface PeopleSweepPlanOptions {
  /** Lock the rows read (the run, inside its transaction). */
  lock: boolean;
  expiry: ReadonlyMap<string, RowExpiry>;
  /** Keys (rowKey) of rows of people under a legal hold, by collection: never changed, and left alone by the timestamp steps. */
  held: ReadonlyMap<string, ReadonlySet<string>>;
  /** Plan the held rows as if their holds were released (to count what the holds keep); the timestamp steps still leave them alone. */
  asIfReleased: boolean;
  eraser: FieldEraser;
  /**
   * Whether the timestamp steps of this sweep are still to come (a dry run): their whole-row
   * deletes are then predicted, so that what refers to a row is counted as the run finds it.
   */
  predictExpiry: boolean;
  rowKey: (collection: CollectionModel, row: Row) => string;
}

interface Reached {
  row: Row;
  /** One fate map per person of the batch who reached the row. */
  fates: Array<ReadonlyMap<string, FieldFate> | undefined>;
}

const RANK = { erase_delete: 0, erase_anonymize: 1, restrict: 2, keep: 3 } as const;

function rank(fate: FieldFate | undefined): number {
  if (!fate || fate.fate === 'keep') return RANK.keep;
  if (fate.fate === 'restrict') return RANK.restrict;
  return fate.action === 'delete' ? RANK.erase_delete : RANK.erase_anonymize;
}

/** A row reached by several people of a batch changes only as far as every one of them allows. */
function mergedFate(reached: Reached, field: string): FieldFate {
  let chosen: FieldFate | undefined;
  for (const fates of reached.fates) {
    const fate = fates?.get(field) ?? { fate: 'keep' };
    if (!chosen || rank(fate) > rank(chosen)) chosen = fate;
  }
  return chosen ?? { fate: 'keep' };
}

/** Is the row's timestamp before `before`? Compared as the expiry's SQL compares it. */
function olderThan(collection: CollectionModel, row: Row, before: Date, dialect: string): boolean {
  if (!collection.timestamp) return false;
  const value = row[collection.timestamp];
  if (!hasValue(value)) return false;
  // SQLite keeps ISO 8601 text and compares it as text.
  if (dialect === 'sqlite' && typeof value === 'string') return value < before.toISOString();
  const time = value instanceof Date ? value.getTime() : Date.parse(String(value));
  return !Number.isNaN(time) && time < before.getTime();
}

interface Verdict {
  plan: RowPlan;
  candidate: boolean;
  changedBy: Set<string>;
  keptBy: Set<string>;
}

function judge(collection: CollectionModel, reached: Reached, options: PeopleSweepPlanOptions, dialect: string): Verdict {
  const { row } = reached;
  const plan = emptyPlan(collection, row);
  const changedBy = new Set<string>();
  const keptBy = new Set<string>();
  const rowFields = options.expiry.get(collection.name)?.fields;
  let stays = false;
  let erasable = false;
  for (const field of collection.fields) {
    const value = row[field.name];
    const timed = rowFields?.get(field.name);
    if (timed) {
      // The timestamp step's field: it goes (delete) or becomes anonymous (anonymize) by itself.
      if (hasValue(value) && (timed.action === 'anonymize' || !olderThan(collection, row, timed.before, dialect))) stays = true;
      continue;
    }
    const fate = mergedFate(reached, field.name);
    if (fate.fate === 'keep') {
      if (hasValue(value)) stays = true;
      continue;
    }
    if (fate.fate === 'restrict') {
      if (hasValue(value)) {
        plan.kept.set(fate.exception, [...(plan.kept.get(fate.exception) ?? []), field.name]);
        keptBy.add(fate.rule);
        stays = true;
      }
      continue;
    }
    erasable = true;
    changedBy.add(fate.rule);
    if (fate.action === 'anonymize') stays = true;
    options.eraser.eraseField(plan, field, value);
  }
  if (plan.kept.size > 0 && collection.restrictColumn && !isTrue(row[collection.restrictColumn])) plan.set[collection.restrictColumn] = true;
  return { plan, candidate: erasable && !stays, changedBy, keptBy };
}

/**
 * Plans the sweep of a batch of people in one session: walks each person, judges every row
 * reached, then decides deletes children first — a row goes only if the rows referring to it
 * (counted in the datastore, less those going in this batch) are none.
 */
export async function planPeopleSweep(session: SqlSession, model: DatasetModel, people: readonly SweepPerson[], options: PeopleSweepPlanOptions): Promise<{ plans: RowPlan[]; tally: PeopleSweepTally[] }> {
  const dialect = session.dialect.name;
  const reached = new Map<string, Map<string, Reached>>();
  for (const person of people) {
    if (person.identities.length === 0) continue;
    await walk(session, model, person.identities, {
      lock: options.lock,
      visit: (collection, rows) => {
        let seen = reached.get(collection.name);
        if (!seen) reached.set(collection.name, (seen = new Map()));
        const fates = person.fates.get(collection.name);
        for (const row of rows) {
          const key = options.rowKey(collection, row);
          const entry = seen.get(key);
          if (entry) entry.fates.push(fates);
          else seen.set(key, { row, fates: [fates] });
        }
      },
    });
  }

  const plans: RowPlan[] = [];
  const tallies = new Map<string, PeopleSweepTally>();
  const count = (collection: string, verdict: Verdict, what: 'deleted' | 'updated' | 'kept' | 'referenced') => {
    const changedBy = [...verdict.changedBy].sort();
    const keptBy = what === 'kept' ? [...verdict.keptBy].sort() : [];
    const key = JSON.stringify([collection, what === 'kept' ? [] : changedBy, keptBy]);
    let tally = tallies.get(key);
    if (!tally) tallies.set(key, (tally = { collection, changedBy: what === 'kept' ? [] : changedBy, keptBy, deleted: 0, updated: 0, kept: 0, referenced: 0 }));
    tally[what] += 1;
  };
  // Rows that leave the datastore in this sweep, by collection: the ones planned here, and in
  // a dry run those the timestamp steps will have deleted before the steps by person run.
  const going = new Map<string, Row[]>();

  for (const name of model.order) {
    const collection = model.collections.get(name)!;
    const rows = reached.get(name);
    if (!rows) continue;
    const held = options.held.get(name);
    const wholeRow = options.expiry.get(name)?.wholeRow;
    const verdicts: Array<{ entry: Reached; verdict: Verdict | undefined }> = [];
    const candidates: Row[] = [];
    for (const [key, entry] of rows) {
      const isHeld = held?.has(key) === true;
      if (isHeld && !options.asIfReleased) continue;
      if (wholeRow) {
        if (isHeld) continue;
        // Rows of a timestamp step: never changed here. Predicted to be gone when the step deletes them.
        if (options.predictExpiry && wholeRow.action === 'delete' && olderThan(collection, entry.row, wholeRow.before, dialect)) {
          verdicts.push({ entry, verdict: undefined });
          candidates.push(entry.row);
        }
        continue;
      }
      const verdict = judge(collection, entry, options, dialect);
      verdicts.push({ entry, verdict });
      if (verdict.candidate) candidates.push(entry.row);
    }
    const referred = await referredRows(session, collection, candidates, wholeRow ? undefined : going);
    const gone: Row[] = [];
    for (const { entry, verdict } of verdicts) {
      const goes = verdict ? verdict.candidate && !referred.has(entry.row) : !referred.has(entry.row);
      if (goes) gone.push(entry.row);
      if (!verdict) continue;
      const { plan } = verdict;
      if (goes) {
        plans.push({ ...plan, action: 'delete', set: {}, perRow: false, changedFields: collection.fields.map((field) => field.name), kept: new Map() });
        count(name, verdict, 'deleted');
        continue;
      }
      if (verdict.candidate) count(name, verdict, 'referenced');
      if (Object.keys(plan.set).length > 0) plans.push({ ...plan, action: 'update' });
      if (plan.changedFields.length > 0) count(name, verdict, 'updated');
      if (plan.kept.size > 0) count(name, verdict, 'kept');
    }
    going.set(name, gone);
  }
  return { plans, tally: [...tallies.values()] };
}
