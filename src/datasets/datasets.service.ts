import { createHmac, randomBytes } from 'node:crypto';
import type { AuditDetailValue, AuditWriter } from '../audit/audit.types.js';
import type { Clock } from '../core/clock.js';
import { PledgeError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Policy } from '../policy/policy.model.js';
import type { DatasetDeclaration } from '../policy/policy.schema.js';
import { covers } from '../policy/taxonomy.js';
import type { Actor } from '../staff/permissions.js';
import type { IdentityInput } from '../subjects/subjects.service.js';
import { HttpDatastore, type HttpDatastoreOptions } from './datasets.http.js';
import { applyPlans, emptyPlan, FieldEraser, isTrue, referredRows, type RowPlan } from './datasets.erasure.js';
import { compileDataset, type CollectionModel, type DatasetModel } from './datasets.model.js';
import { planPeopleSweep, type PeopleSweepTally, type RowExpiry, type SweepPerson } from './datasets.sweep.js';
import { keyOf, walk } from './datasets.planner.js';
import { after, datastoreError, inList, openSqlDatastore, Params, sqlDialectOf, type Row, type SqlDatastore, type SqlSession } from './datasets.sql.js';

export type { IdentityInput } from '../subjects/subjects.service.js';
export type { FieldFate, PeopleSweepTally, RowExpiry, SweepPerson } from './datasets.sweep.js';

/**
 * Connected datasets: the company's own datastores, declared in the policy, that
 * data-subject requests and retention reach. For each datastore:
 *
 * - find streams every row of a person, walking the declared graph from their identities;
 * - erase changes those rows in one transaction per datastore, children before parents,
 *   applying each field's strategy and keeping (restricted, listed) what a legal obligation
 *   keeps; a dry run reports exactly the same changes without making them;
 * - correct writes new values into the fields of a category;
 * - expire deletes or anonymises rows older than a date, and sweepPeople erases the fields
 *   of people whose retention rules have run out (retention sweeps).
 *
 * Rows are re-read inside the erasure's transaction and locked, so a row that stopped
 * belonging to the person between a dry run and the erasure is not touched, and the values
 * hashed are the current ones. Every call is audited with counts and names, never values.
 *
 *   const datasets = new DatasetsService({ policy, env: datasetEnv(names), audit, clock });
 *   await datasets.find('shop', [{ kind: 'email', value }], (row) => pack.add(row));
 *   const result = await datasets.erase('shop', identities, { dryRun: true, actor });
 */
export interface FoundRow {
  datastore: string;
  collection: string;
  primaryKey: Record<string, unknown>;
  fields: Array<{ name: string; category: string; value: unknown }>;
}

export interface FindSummary {
  datastore: string;
  rows: number;
  /** Rows found per collection. */
  collections: Record<string, number>;
}

export interface ChangedRow {
  collection: string;
  primaryKey: Record<string, unknown>;
  action: 'update' | 'delete';
  /** Fields changed (for a delete: every declared field of the row). */
  fields: string[];
}

export interface KeptRow {
  collection: string;
  primaryKey: Record<string, unknown>;
  fields: string[];
  /** The retention exception the fields are kept under. */
  exception: string;
}

export interface ErasureResult {
  datastore: string;
  dryRun: boolean;
  changed: ChangedRow[];
  kept: KeptRow[];
  counts: { updated: number; deleted: number; kept: number };
}

export interface CorrectionResult {
  datastore: string;
  updated: Array<{ collection: string; primaryKey: Record<string, unknown>; fields: string[] }>;
  /** Categories corrected that no field of this datastore holds. */
  unmatched: string[];
}

export interface ExpireOptions {
  before: Date;
  action: 'delete' | 'anonymize';
  dryRun: boolean;
  batchSize?: number;
  onProgress?: (done: number) => void;
  /** Rows left alone whatever their age (people under a legal hold), as given by heldRowKeys. */
  skip?: ReadonlySet<string>;
  /**
   * Only these fields are erased, with their strategies (delete_row empties the field), and
   * the rows stay: for a collection whose other fields follow another rule. Exceptions the
   * fields name are taken as ended (the caller measured `before` past them).
   */
  fields?: readonly string[];
  /** Who the audit entry names; default the datasets domain itself. */
  actor?: Actor;
}

export interface ExpireResult {
  /** Rows deleted or changed (in a dry run: that would be). */
  rows: number;
  /** Rows past `before` left alone because they are in `skip`. */
  skipped: number;
  /**
   * Rows a delete left in place, their fields erased, because rows of another collection
   * still refer to them (a foreign key would refuse the delete). The next sweep deletes them
   * once nothing refers to them any more.
   */
  referenced: number;
}

export interface PeopleSweepOptions {
  dryRun: boolean;
  actor: Actor;
  /** What the timestamp steps of the same sweep do to each collection (see RowExpiry). */
  expiry: ReadonlyMap<string, RowExpiry>;
  /**
   * Whether those steps are still to come when this dry run plans: their deletes are then
   * predicted, so the dry run decides as the run will. Default: yes.
   */
  expiryPending?: boolean;
  /** People under a legal hold (one identity list each): their rows are never changed. */
  held?: ReadonlyArray<IdentityInput[]>;
  /**
   * A dry run planning the held people's own rows, as if their holds were released (the
   * timestamp steps still leave those rows alone): what the holds keep.
   */
  asIfReleased?: boolean;
}

export interface PeopleSweepResult {
  datastore: string;
  dryRun: boolean;
  tally: PeopleSweepTally[];
}

/** A collection as retention sees it: where its rows' clock is, and what each field holds. */
export interface DatasetCollectionLayout {
  datastore: string;
  collection: string;
  timestamp: string | undefined;
  /** The categories of its fields, each once. */
  categories: string[];
  fields: Array<{ name: string; category: string; exception?: string; identity?: string }>;
  /** Every row is kept under this retention exception. */
  exception?: string;
  /** Whether a person's walk goes on from this collection's rows to other collections. */
  leadsOn: boolean;
}

function layoutOf(model: DatasetModel, collection: CollectionModel, categories: string[]): DatasetCollectionLayout {
  return {
    datastore: model.id,
    collection: collection.name,
    timestamp: collection.timestamp,
    categories,
    fields: collection.fields.map((field) => ({ name: field.name, category: field.category, ...(field.exception ? { exception: field.exception } : {}), ...(field.identity ? { identity: field.identity } : {}) })),
    ...(collection.exception ? { exception: collection.exception } : {}),
    leadsOn: collection.outgoing.length > 0,
  };
}

/** One row's identity across calls: its primary-key values, in key order, as text. */
function rowKey(primaryKey: readonly string[], values: (column: string) => unknown): string {
  return JSON.stringify(primaryKey.map((column) => String(values(column))));
}

export interface DatasetsServiceDeps {
  policy: Policy;
  /** Connection URLs (and HTTP signing secrets) by the variable names the policy declares; see datasetEnv in core/config. */
  env: Readonly<Record<string, string | undefined>>;
  audit: AuditWriter;
  clock: Clock;
  logger?: Logger;
  /** Key of the `hash` erasure strategy; without it a random key per process (hashes then differ between runs). */
  hashKey?: Buffer;
  /** Hosts (host or host:port) HTTP datastores may be reached at. */
  httpHosts?: readonly string[];
}

const SYSTEM: Actor = { type: 'system', id: 'datasets' };
const DEFAULT_TIMEOUT_SECONDS = 30;

type Datastore = { kind: 'sql'; sql: SqlDatastore } | { kind: 'http'; http: HttpDatastore };

export class DatasetsService {
  private readonly models = new Map<string, DatasetModel>();
  private readonly open = new Map<string, Datastore>();
  /** heldRowKeys' walks, by list of people (a sweep passes the same list to each collection). */
  private readonly heldWalks = new WeakMap<ReadonlyArray<IdentityInput[]>, Map<string, Promise<Map<string, Set<string>>>>>();
  private readonly eraser: FieldEraser;

  constructor(private readonly deps: DatasetsServiceDeps) {
    for (const dataset of deps.policy.document.datasets ?? []) this.models.set(dataset.id, compileDataset(dataset));
    this.eraser = new FieldEraser(deps.hashKey ?? randomBytes(32));
  }

  /** Ids of the datastores declared in the policy. */
  datastores(): string[] {
    return [...this.models.keys()];
  }

  /**
   * Collections holding data of these categories (or below them), with their timestamp
   * column and their fields: what a retention rule reaches. Parents come before the
   * collections referring to them (see parentsFirstOrder).
   */
  collectionsFor(categories: readonly string[]): DatasetCollectionLayout[] {
    const out: DatasetCollectionLayout[] = [];
    for (const model of this.models.values()) {
      for (const name of model.parentsFirst) {
        const collection = model.collections.get(name)!;
        const held = collection.fields.map((field) => field.category).filter((category) => categories.some((reference) => covers(reference, category)));
        if (held.length > 0) out.push(layoutOf(model, collection, [...new Set(held)]));
      }
    }
    return out;
  }

  /** Every collection of a datastore with its fields, parents first: what a retention sweep by person reaches. */
  layout(datastoreId: string): DatasetCollectionLayout[] {
    const model = this.model(datastoreId);
    return model.parentsFirst.map((name) => {
      const collection = model.collections.get(name)!;
      return layoutOf(model, collection, [...new Set(collection.fields.map((field) => field.category))]);
    });
  }

  /**
   * How a datastore is reached: over SQL every operation is available; over HTTP the
   * protocol erases a person's data whole and expires whole rows. Opens nothing.
   */
  reach(datastoreId: string): 'sql' | 'http' {
    return this.datastore(this.model(datastoreId)).kind;
  }

  // --- find ------------------------------------------------------------------------------------

  async find(datastoreId: string, identities: IdentityInput[], sink: (row: FoundRow) => void | Promise<void>, options: { actor?: Actor; requestId?: string } = {}): Promise<FindSummary> {
    const model = this.model(datastoreId);
    const summary: FindSummary = { datastore: datastoreId, rows: 0, collections: {} };
    const count = (collection: string) => {
      summary.rows += 1;
      summary.collections[collection] = (summary.collections[collection] ?? 0) + 1;
    };
    const store = this.datastore(model);
    if (store.kind === 'http') {
      await this.guard(datastoreId, 'reading', () =>
        store.http.find(identities, async (row) => {
          count(row.collection);
          await deliver(sink, row);
        }),
      );
    } else {
      await this.guard(datastoreId, 'reading', () =>
        store.sql.read((session) =>
          walk(session, model, identities, {
            lock: false,
            visit: async (collection, rows) => {
              for (const row of rows) {
                count(collection.name);
                await deliver(sink, {
                  datastore: datastoreId,
                  collection: collection.name,
                  primaryKey: Object.fromEntries(collection.primaryKey.map((column) => [column, row[column]])),
                  fields: collection.fields.map((field) => ({ name: field.name, category: field.category, value: row[field.name] })),
                });
              }
            },
          }),
        ),
      );
    }
    await this.deps.audit.record([
      this.auditEvent(options.actor ?? SYSTEM, 'dataset.read', datastoreId, options.requestId, {
        rows: summary.rows,
        collections: Object.keys(summary.collections).sort(),
      }),
    ]);
    return summary;
  }

  // --- erase -----------------------------------------------------------------------------------

  async erase(datastoreId: string, identities: IdentityInput[], options: { dryRun: boolean; actor: Actor; requestId?: string }): Promise<ErasureResult> {
    const model = this.model(datastoreId);
    const store = this.datastore(model);
    let result: ErasureResult;
    if (store.kind === 'http') {
      result = await store.http.erase(identities, options.dryRun);
    } else {
      const run = async (session: SqlSession) => {
        const plans: RowPlan[] = [];
        await walk(session, model, identities, {
          lock: !options.dryRun,
          visit: (collection, rows) => {
            for (const row of rows) plans.push(this.planErasure(model, collection, row));
          },
        });
        if (!options.dryRun) await applyPlans(session, model, plans);
        return this.erasureResult(datastoreId, options.dryRun, model, plans);
      };
      result = await this.guard(datastoreId, options.dryRun ? 'planning an erasure' : 'erasing', () => (options.dryRun ? store.sql.read(run) : store.sql.write(run)));
    }
    await this.deps.audit.record([
      this.auditEvent(options.actor, 'dataset.erase', datastoreId, options.requestId, {
        dry_run: options.dryRun,
        updated: result.counts.updated,
        deleted: result.counts.deleted,
        kept: result.counts.kept,
        collections: [...new Set([...result.changed, ...result.kept].map((row) => row.collection))].sort(),
        exceptions: [...new Set(result.kept.map((row) => row.exception))].sort(),
      }),
    ]);
    return result;
  }

  private planErasure(model: DatasetModel, collection: CollectionModel, row: Row): RowPlan {
    const plan = emptyPlan(collection, row);
    const keep = (exception: string, field: string) => plan.kept.set(exception, [...(plan.kept.get(exception) ?? []), field]);
    if (collection.exception) {
      for (const field of collection.fields) keep(collection.exception, field.name);
    } else {
      for (const field of collection.fields) if (field.exception && row[field.name] !== null && row[field.name] !== undefined) keep(field.exception, field.name);
    }
    if (plan.kept.size === 0 && collection.deletesRows && !model.undeletable.has(collection.name)) {
      plan.action = 'delete';
      plan.changedFields = collection.fields.map((field) => field.name);
      return plan;
    }
    if (!collection.exception) this.eraser.eraseFields(plan, row);
    if (plan.kept.size > 0 && collection.restrictColumn && !isTrue(row[collection.restrictColumn])) {
      plan.set[collection.restrictColumn] = true;
    }
    if (Object.keys(plan.set).length > 0) plan.action = 'update';
    return plan;
  }

  private erasureResult(datastore: string, dryRun: boolean, model: DatasetModel, plans: RowPlan[]): ErasureResult {
    const result: ErasureResult = { datastore, dryRun, changed: [], kept: [], counts: { updated: 0, deleted: 0, kept: 0 } };
    const position = new Map(model.order.map((name, index) => [name, index]));
    const ordered = [...plans].sort((a, b) => position.get(a.collection.name)! - position.get(b.collection.name)!);
    for (const plan of ordered) {
      const primaryKey = Object.fromEntries(plan.collection.primaryKey.map((column, index) => [column, plan.key[index]]));
      if (plan.action === 'delete') result.counts.deleted += 1;
      if (plan.action === 'update') result.counts.updated += 1;
      if (plan.action !== 'none' && plan.changedFields.length > 0) result.changed.push({ collection: plan.collection.name, primaryKey, action: plan.action, fields: plan.changedFields });
      else if (plan.action === 'update') result.changed.push({ collection: plan.collection.name, primaryKey, action: 'update', fields: [] });
      for (const [exception, fields] of plan.kept) {
        result.kept.push({ collection: plan.collection.name, primaryKey, fields, exception });
        result.counts.kept += 1;
      }
    }
    return result;
  }

  // --- correct ---------------------------------------------------------------------------------

  async correct(datastoreId: string, identities: IdentityInput[], corrections: Record<string, unknown>, options: { actor: Actor; requestId?: string }): Promise<CorrectionResult> {
    const model = this.model(datastoreId);
    const store = this.datastore(model);
    const categories = Object.keys(corrections);
    const unknown = categories.filter((category) => !this.deps.policy.categories.has(category));
    if (unknown.length > 0) throw new PledgeError('invalid_field_value', `not data categories of the policy: ${unknown.join(', ')}`);
    const held = new Set<string>();
    for (const collection of model.collections.values()) for (const field of collection.fields) if (!field.primaryKey && field.category in corrections) held.add(field.category);
    let result: CorrectionResult;
    if (store.kind === 'http') {
      result = await store.http.correct(identities, corrections);
    } else {
      result = { datastore: datastoreId, updated: [], unmatched: categories.filter((category) => !held.has(category)) };
      await this.guard(datastoreId, 'correcting', () =>
        store.sql.write(async (session) => {
          const updates: Array<{ collection: CollectionModel; key: unknown[]; set: Record<string, unknown> }> = [];
          await walk(session, model, identities, {
            lock: true,
            visit: (collection, rows) => {
              for (const row of rows) {
                const set: Record<string, unknown> = {};
                for (const field of collection.fields) {
                  if (field.primaryKey || !(field.category in corrections)) continue;
                  const value = storable(corrections[field.category]);
                  if (!sameValue(row[field.name], value)) set[field.name] = value;
                }
                if (Object.keys(set).length > 0) updates.push({ collection, key: keyOf(collection, row), set });
              }
            },
          });
          const dialect = session.dialect;
          for (const update of updates) {
            const params = new Params(dialect);
            const assignments = Object.entries(update.set).map(([column, value]) => `${dialect.quote(column)} = ${params.add(value)}`);
            const where = inList(dialect, params, update.collection.primaryKey, [update.key]);
            await session.execute(`update ${dialect.quote(update.collection.name)} set ${assignments.join(', ')} where ${where}`, params.values);
            result.updated.push({
              collection: update.collection.name,
              primaryKey: Object.fromEntries(update.collection.primaryKey.map((column, index) => [column, update.key[index]])),
              fields: Object.keys(update.set),
            });
          }
        }),
      );
    }
    await this.deps.audit.record([
      this.auditEvent(options.actor, 'dataset.correct', datastoreId, options.requestId, {
        rows: result.updated.length,
        categories: categories.filter((category) => !result.unmatched.includes(category)).sort(),
        collections: [...new Set(result.updated.map((row) => row.collection))].sort(),
      }),
    ]);
    return result;
  }

  /**
   * A restriction request: sets the restrict column (`restrict_column` in the declaration) on
   * every row of the person in the collections that have one, in one transaction, so the
   * company's own systems can stop using them. Collections without one are listed as not
   * restricted; the company must then restrict them by its own means.
   */
  async restrict(datastoreId: string, identities: IdentityInput[], options: { actor: Actor; requestId?: string }): Promise<{ restricted: number; collections: string[]; unsupported: string[] }> {
    const model = this.model(datastoreId);
    const store = this.datastore(model);
    const unsupported = [...model.collections.values()].filter((collection) => !collection.restrictColumn).map((collection) => collection.name);
    let restricted = 0;
    const touched = new Set<string>();
    if (store.kind === 'sql') {
      await this.guard(datastoreId, 'restricting', () =>
        store.sql.write(async (session) => {
          const updates: Array<{ collection: CollectionModel; key: unknown[] }> = [];
          await walk(session, model, identities, {
            lock: true,
            visit: (collection, rows) => {
              if (!collection.restrictColumn) return;
              for (const row of rows) if (!isTrue(row[collection.restrictColumn])) updates.push({ collection, key: keyOf(collection, row) });
            },
          });
          const dialect = session.dialect;
          for (const update of updates) {
            const params = new Params(dialect);
            // Placeholders are positional on SQLite and MySQL: bind in the order the SQL reads.
            const flag = params.add(true);
            const where = inList(dialect, params, update.collection.primaryKey, [update.key]);
            await session.execute(`update ${dialect.quote(update.collection.name)} set ${dialect.quote(update.collection.restrictColumn!)} = ${flag} where ${where}`, params.values);
            restricted++;
            touched.add(update.collection.name);
          }
        }),
      );
    } else {
      unsupported.splice(0, unsupported.length, ...model.collections.keys());
    }
    await this.deps.audit.record([this.auditEvent(options.actor, 'dataset.restrict', datastoreId, options.requestId, { rows: restricted, collections: [...touched].sort() })]);
    return { restricted, collections: [...touched].sort(), unsupported };
  }

  // --- expire ----------------------------------------------------------------------------------

  /**
   * The keys of the rows of one collection that belong to these people (each entry: one
   * person's identities), for `expire`'s `skip`: what a legal hold keeps out of a sweep.
   */
  async heldRowKeys(datastoreId: string, collectionName: string, people: ReadonlyArray<IdentityInput[]>, actor?: Actor): Promise<Set<string>> {
    const model = this.model(datastoreId);
    if (!model.collections.has(collectionName)) throw new PledgeError('dataset_not_found', `datastore "${datastoreId}" declares no collection "${collectionName}"`);
    return new Set((await this.heldKeys(model, people, actor)).get(collectionName));
  }

  /** heldRowKeys for every collection at once: one walk per datastore and list of people (a sweep asks once per collection). */
  private heldKeys(model: DatasetModel, people: ReadonlyArray<IdentityInput[]>, actor?: Actor): Promise<Map<string, Set<string>>> {
    let walks = this.heldWalks.get(people);
    if (!walks) this.heldWalks.set(people, (walks = new Map()));
    let walk = walks.get(model.id);
    if (!walk) walks.set(model.id, (walk = this.rowKeysByCollection(model, people, actor)));
    return walk;
  }

  private async rowKeysByCollection(model: DatasetModel, people: ReadonlyArray<IdentityInput[]>, actor?: Actor): Promise<Map<string, Set<string>>> {
    const keys = new Map<string, Set<string>>();
    for (const identities of people) {
      if (identities.length === 0) continue;
      await this.find(
        model.id,
        identities,
        (row) => {
          const collection = model.collections.get(row.collection)!;
          let found = keys.get(row.collection);
          if (!found) keys.set(row.collection, (found = new Set()));
          found.add(rowKey(collection.primaryKey, (column) => row.primaryKey[column]));
        },
        actor ? { actor } : {},
      );
    }
    return keys;
  }

  /**
   * Retention: deletes or anonymises the rows of one collection whose timestamp is before
   * `before`, a batch per transaction (so a sweep over millions of rows never holds a long
   * lock), in primary-key order. Anonymising applies each field's erasure strategy, except
   * delete_row (the row stays, its fields are emptied) and fields kept under an exception.
   * A row that rows of another collection still refer to is not deleted (the foreign key
   * would refuse it, and the batch with it): its fields are erased and it is counted as
   * `referenced`.
   */
  async expire(datastoreId: string, collectionName: string, options: ExpireOptions): Promise<ExpireResult> {
    const { model, collection, timestamp } = this.timedCollection(datastoreId, collectionName);
    const fields = options.fields ? new Set(options.fields) : undefined;
    for (const name of fields ?? []) {
      if (!collection.fields.some((field) => field.name === name)) throw new PledgeError('dataset_not_found', `collection "${collectionName}" of datastore "${datastoreId}" declares no field "${name}"`);
    }
    const batchSize = Math.max(1, Math.min(options.batchSize ?? 1000, 10_000));
    const store = this.datastore(model);
    let done = 0;
    let skipped = 0;
    let referenced = 0;
    if (store.kind === 'http') {
      if (options.skip && options.skip.size > 0) throw new PledgeError('dataset_protocol_error', `datastore "${datastoreId}" is reached over HTTP, whose expiry cannot leave held people's rows alone; release the holds or expire it by hand`);
      if (fields) throw new PledgeError('dataset_protocol_error', `datastore "${datastoreId}" is reached over HTTP, whose expiry removes whole rows: it cannot erase only some fields of "${collectionName}"`);
      done = (await store.http.expire(collectionName, options)).rows;
      options.onProgress?.(done);
    } else if (options.action === 'delete' && !fields && !options.dryRun && !(options.skip && options.skip.size > 0) && collection.referencedBy.length === 0) {
      // Whole rows that nothing refers to and nobody holds: each batch is one DELETE of the
      // oldest due rows, chosen by the database — no row travels to Pledge and back.
      await this.guard(datastoreId, 'expiring rows', async () => {
        for (;;) {
          const deleted = await store.sql.write(async (session) => {
            const { dialect } = session;
            const params = new Params(dialect);
            const table = dialect.quote(collection.name);
            const due = `${dialect.quote(timestamp)} < ${params.add(timestampValue(dialect.name, options.before))}`;
            const order = collection.primaryKey.map(dialect.quote).join(', ');
            // MySQL takes ORDER BY … LIMIT on DELETE itself and no LIMIT in an IN subquery.
            const sql =
              dialect.name === 'mysql'
                ? `delete from ${table} where ${due} order by ${order} limit ${batchSize}`
                : `delete from ${table} where (${order}) in (select ${order} from ${table} where ${due} order by ${order} limit ${batchSize})`;
            return session.execute(sql, params.values);
          });
          done += deleted;
          if (deleted > 0) options.onProgress?.(done);
          if (deleted < batchSize) break;
        }
      });
    } else {
      let last: unknown[] | undefined;
      await this.guard(datastoreId, 'expiring rows', async () => {
        for (;;) {
          const batch = async (session: SqlSession) => {
            const dialect = session.dialect;
            const params = new Params(dialect);
            let where = `${dialect.quote(timestamp)} < ${params.add(timestampValue(dialect.name, options.before))}`;
            if (last) where += ` and ${after(dialect, params, collection.primaryKey, last)}`;
            const rows = await session.query(
              `select ${collection.columns.map(dialect.quote).join(', ')} from ${dialect.quote(collection.name)} where ${where} order by ${collection.primaryKey.map(dialect.quote).join(', ')} limit ${batchSize}${options.dryRun ? '' : dialect.lockSuffix}`,
              params.values,
            );
            const skip = options.skip;
            const due = skip && skip.size > 0 ? rows.filter((row) => !skip.has(rowKey(collection.primaryKey, (column) => row[column]))) : rows;
            const held = rows.length - due.length;
            const plans: RowPlan[] = [];
            let kept = 0;
            if (options.action === 'delete' && !fields) {
              const stays = await referredRows(session, collection, due);
              kept = stays.size;
              for (const row of due) {
                if (!stays.has(row)) {
                  plans.push({ ...emptyPlan(collection, row), action: 'delete' });
                  continue;
                }
                // Past every rule and exception of the row: nothing of it is kept but the key.
                const plan = this.planAnonymisation(collection, row, new Set(collection.fields.map((field) => field.name)));
                if (plan.action === 'update') plans.push(plan);
              }
            } else {
              for (const row of due) {
                const plan = this.planAnonymisation(collection, row, fields);
                if (plan.action === 'update') plans.push(plan);
              }
            }
            if (!options.dryRun) await applyPlans(session, { ...model, order: [collection.name] }, plans);
            return { rows, changed: plans.length, held, kept };
          };
          const { rows, changed, held, kept } = options.dryRun ? await store.sql.read(batch) : await store.sql.write(batch);
          done += changed;
          skipped += held;
          referenced += kept;
          if (rows.length > 0) options.onProgress?.(done);
          if (rows.length < batchSize) break;
          last = keyOf(collection, rows[rows.length - 1]!);
        }
      });
    }
    await this.deps.audit.record([
      this.auditEvent(options.actor ?? SYSTEM, 'dataset.expire', datastoreId, undefined, {
        collection: collectionName,
        action: options.action,
        dry_run: options.dryRun,
        rows: done,
        skipped_by_hold: skipped,
        referenced,
        ...(fields ? { fields: [...fields].sort() } : {}),
      }),
    ]);
    return { rows: done, skipped, referenced };
  }

  /**
   * The rows of a collection written in [from, before) — retention's rows past their rule but
   * kept by an exception: counted with one COUNT instead of being read, and (unless `dryRun`)
   * marked restricted where the collection has a restrict column, as kept data must be. Undefined
   * for a datastore reached over HTTP, whose protocol has neither.
   */
  async keepBetween(datastoreId: string, collectionName: string, from: Date, before: Date, options: { dryRun: boolean; skip?: ReadonlySet<string> }): Promise<{ rows: number; restricted: number } | undefined> {
    const { model, collection, timestamp } = this.timedCollection(datastoreId, collectionName);
    const store = this.datastore(model);
    if (store.kind === 'http') return undefined;
    const window = (session: SqlSession, params: Params) => {
      const column = session.dialect.quote(timestamp);
      return `${column} >= ${params.add(timestampValue(session.dialect.name, from))} and ${column} < ${params.add(timestampValue(session.dialect.name, before))}`;
    };
    return this.guard(datastoreId, 'keeping rows', async () => {
      const rows = await store.sql.read(async (session) => {
        const params = new Params(session.dialect);
        const [row] = await session.query(`select count(*) as n from ${session.dialect.quote(collection.name)} where ${window(session, params)}`, params.values);
        return Number(row?.n ?? 0);
      });
      const restrictColumn = collection.restrictColumn;
      if (options.dryRun || !restrictColumn || rows === 0) return { rows, restricted: 0 };
      const skip = options.skip;
      const restricted = await store.sql.write(async (session) => {
        const { dialect } = session;
        const table = dialect.quote(collection.name);
        const flag = dialect.quote(restrictColumn);
        const unflagged = (params: Params) => `(${flag} is null or ${flag} <> ${params.add(dialect.trueValue)})`;
        if (!skip || skip.size === 0) {
          const params = new Params(dialect);
          const value = params.add(dialect.trueValue);
          return session.execute(`update ${table} set ${flag} = ${value} where ${window(session, params)} and ${unflagged(params)}`, params.values);
        }
        // People under a legal hold: their rows are left exactly as they are, so the rows to
        // flag are chosen here, by key.
        const params = new Params(dialect);
        const candidates = await session.query(`select ${collection.primaryKey.map(dialect.quote).join(', ')} from ${table} where ${window(session, params)} and ${unflagged(params)}`, params.values);
        const keys = candidates.filter((row) => !skip.has(rowKey(collection.primaryKey, (column) => row[column]))).map((row) => collection.primaryKey.map((column) => row[column]));
        let changed = 0;
        for (let start = 0; start < keys.length; start += 1_000) {
          const update = new Params(dialect);
          const value = update.add(dialect.trueValue);
          changed += await session.execute(`update ${table} set ${flag} = ${value} where ${inList(dialect, update, collection.primaryKey, keys.slice(start, start + 1_000))}`, update.values);
        }
        return changed;
      });
      return { rows, restricted };
    });
  }

  /** A collection retention can age: declared, with a timestamp column. */
  private timedCollection(datastoreId: string, collectionName: string): { model: DatasetModel; collection: CollectionModel; timestamp: string } {
    const model = this.model(datastoreId);
    const collection = model.collections.get(collectionName);
    if (!collection) throw new PledgeError('dataset_not_found', `datastore "${datastoreId}" declares no collection "${collectionName}"`);
    if (!collection.timestamp) throw new PledgeError('dataset_no_timestamp', `collection "${collectionName}" of datastore "${datastoreId}" declares no timestamp column, so its rows cannot be expired`);
    return { model, collection, timestamp: collection.timestamp };
  }

  private planAnonymisation(collection: CollectionModel, row: Row, fields?: ReadonlySet<string>): RowPlan {
    const plan = emptyPlan(collection, row);
    if (collection.exception && !fields) return plan;
    this.eraser.eraseFields(plan, row, fields ? (field) => fields.has(field.name) : undefined);
    if (plan.changedFields.length > 0) plan.action = 'update';
    return plan;
  }

  // --- retention by person -------------------------------------------------------------------

  /**
   * Retention for a batch of people: walks the datastore from each person's identities and
   * erases, with the fields' strategies, the fields their fates say may go; a row goes whole
   * when every field of it may and no row left behind refers to it. Fields past a rule but
   * kept by an exception stay, and their rows are flagged restricted. One transaction for
   * the batch (rows re-read and locked inside it); a dry run plans the same and changes
   * nothing. Rows of people under a legal hold (`held`) are left alone. Audited as one
   * `dataset.expire_people` entry naming the subjects, never a value.
   */
  async sweepPeople(datastoreId: string, people: readonly SweepPerson[], options: PeopleSweepOptions): Promise<PeopleSweepResult> {
    const model = this.model(datastoreId);
    const store = this.datastore(model);
    if (store.kind === 'http') {
      throw new PledgeError('dataset_protocol_error', `datastore "${datastoreId}" is reached over HTTP, whose protocol erases a person's data whole: it cannot erase only the categories a retention rule governs`);
    }
    const held = options.held && options.held.length > 0 ? await this.heldKeys(model, options.held, options.actor) : new Map<string, Set<string>>();
    const run = async (session: SqlSession) => {
      const planned = await planPeopleSweep(session, model, people, {
        lock: !options.dryRun,
        expiry: options.expiry,
        held,
        asIfReleased: options.dryRun && options.asIfReleased === true,
        eraser: this.eraser,
        predictExpiry: options.dryRun && options.expiryPending !== false,
        rowKey: (collection, row) => rowKey(collection.primaryKey, (column) => row[column]),
      });
      if (!options.dryRun) await applyPlans(session, model, planned.plans);
      return planned.tally;
    };
    const tally = await this.guard(datastoreId, options.dryRun ? 'planning a retention sweep' : 'sweeping rows past retention', () => (options.dryRun ? store.sql.read(run) : store.sql.write(run)));
    const sum = (what: 'deleted' | 'updated' | 'kept' | 'referenced') => tally.reduce((total, entry) => total + entry[what], 0);
    await this.deps.audit.record([
      this.auditEvent(options.actor, 'dataset.expire_people', datastoreId, undefined, {
        dry_run: options.dryRun,
        subjects: people.map((person) => person.subject),
        rules: [...new Set(tally.flatMap((entry) => [...entry.changedBy, ...entry.keptBy]))].sort(),
        deleted: sum('deleted'),
        updated: sum('updated'),
        kept: sum('kept'),
        referenced: sum('referenced'),
        collections: [...new Set(tally.map((entry) => entry.collection))].sort(),
      }),
    ]);
    return { datastore: datastoreId, dryRun: options.dryRun, tally };
  }

  async close(): Promise<void> {
    const stores = [...this.open.values()];
    this.open.clear();
    await Promise.all(stores.map((store) => (store.kind === 'sql' ? store.sql.close() : undefined)));
  }

  // --- plumbing --------------------------------------------------------------------------------

  private model(datastoreId: string): DatasetModel {
    const model = this.models.get(datastoreId);
    if (!model) throw new PledgeError('dataset_not_found', `no datastore "${datastoreId}" is declared in the policy (declared: ${this.datastores().join(', ') || 'none'})`);
    return model;
  }

  private datastore(model: DatasetModel): Datastore {
    const existing = this.open.get(model.id);
    if (existing) return existing;
    const declaration: DatasetDeclaration = model.declaration;
    const variable = declaration.connection.env;
    const url = this.deps.env[variable];
    if (!url) throw new PledgeError('dataset_not_configured', `datastore "${model.id}": the environment variable ${variable} named by the policy is not set`);
    const timeoutMs = (declaration.connection.timeout_seconds ?? DEFAULT_TIMEOUT_SECONDS) * 1000;
    let store: Datastore;
    if (/^https?:\/\//.test(url)) {
      const secretVariable = declaration.connection.secret_env;
      const secret = secretVariable ? this.deps.env[secretVariable] : undefined;
      if (!secret) throw new PledgeError('dataset_not_configured', `datastore "${model.id}": an HTTP datastore needs a signing secret (connection.secret_env${secretVariable ? `: ${secretVariable} is not set` : ' is not declared'})`);
      const httpOptions: HttpDatastoreOptions = { timeoutMs, allowedHosts: this.deps.httpHosts ?? [] };
      store = { kind: 'http', http: new HttpDatastore(model, url, secret, httpOptions) };
    } else if (sqlDialectOf(url)) {
      store = { kind: 'sql', sql: openSqlDatastore(model.id, url, { timeoutMs }) };
    } else {
      throw new PledgeError('dataset_not_configured', `datastore "${model.id}": ${variable} must hold a postgres://, mysql://, mariadb://, sqlite: or https:// URL`);
    }
    this.open.set(model.id, store);
    return store;
  }

  private async guard<T>(datastore: string, doing: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      // The caller's own sink failed: its error, not the datastore's.
      if (error instanceof SinkFailure) throw error.cause;
      const failure = datastoreError(datastore, error, doing);
      this.deps.logger?.warn({ datastore, code: failure.code, reason: failure.details?.reason }, 'datastore operation failed');
      throw failure;
    }
  }

  private auditEvent(actor: Actor, action: string, datastore: string, requestId: string | undefined, details: Record<string, AuditDetailValue>) {
    return {
      actor,
      action,
      target: requestId ? { type: 'request', id: requestId } : { type: 'datastore', id: datastore },
      details: { datastore, ...details },
    };
  }
}

class SinkFailure extends Error {
  constructor(override readonly cause: unknown) {
    super('the find sink failed');
  }
}

async function deliver(sink: (row: FoundRow) => void | Promise<void>, row: FoundRow): Promise<void> {
  try {
    await sink(row);
  } catch (error) {
    throw new SinkFailure(error);
  }
}

function sameValue(current: unknown, next: unknown): boolean {
  if (current === next) return true;
  if (current === null || current === undefined || next === null || next === undefined) return false;
  return String(current) === String(next);
}

/** Corrections arrive as JSON values; structured ones are stored as JSON text. */
function storable(value: unknown): unknown {
  if (value === undefined) return null;
  if (value !== null && typeof value === 'object') return JSON.stringify(value);
  return value;
}

/** SQLite has no date type: timestamps there are compared as ISO 8601 text. */
function timestampValue(dialect: string, date: Date): unknown {
  return dialect === 'sqlite' ? date.toISOString() : date;
}

/**
 * The key of the `hash` erasure strategy, derived from the engine's blind-index secret so it
 * is stable across restarts and nodes without another secret to keep.
 */
export function datasetHashKey(keyring: { secret(name: 'blind_index'): Buffer }): Buffer {
  return createHmac('sha256', keyring.secret('blind_index')).update('pledge/datasets/erasure-hash').digest();
}
