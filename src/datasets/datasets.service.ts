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
import { compileDataset, type CollectionModel, type DatasetModel, type FieldModel } from './datasets.model.js';
import { keyOf, walk } from './datasets.planner.js';
import { after, datastoreError, inList, openSqlDatastore, Params, sqlDialectOf, type Row, type SqlDatastore, type SqlSession } from './datasets.sql.js';

export type { IdentityInput } from '../subjects/subjects.service.js';

/**
 * Connected datasets: the company's own datastores, declared in the policy, that
 * data-subject requests and retention reach. For each datastore:
 *
 * - find streams every row of a person, walking the declared graph from their identities;
 * - erase changes those rows in one transaction per datastore, children before parents,
 *   applying each field's strategy and keeping (restricted, listed) what a legal obligation
 *   keeps; a dry run reports exactly the same changes without making them;
 * - correct writes new values into the fields of a category;
 * - expire deletes or anonymises rows older than a date (retention sweeps).
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

/** A row's planned change: the assignments of an update, or a delete. */
interface RowPlan {
  collection: CollectionModel;
  key: unknown[];
  action: 'update' | 'delete' | 'none';
  set: Record<string, unknown>;
  /** Whether `set` holds values computed per row (hash, random): such rows are updated one by one. */
  perRow: boolean;
  changedFields: string[];
  kept: Map<string, string[]>;
}

export class DatasetsService {
  private readonly models = new Map<string, DatasetModel>();
  private readonly open = new Map<string, Datastore>();
  /** heldRowKeys' walks, by list of people (a sweep passes the same list to each collection). */
  private readonly heldWalks = new WeakMap<ReadonlyArray<IdentityInput[]>, Map<string, Promise<Map<string, Set<string>>>>>();
  private readonly hashKey: Buffer;

  constructor(private readonly deps: DatasetsServiceDeps) {
    for (const dataset of deps.policy.document.datasets ?? []) this.models.set(dataset.id, compileDataset(dataset));
    this.hashKey = deps.hashKey ?? randomBytes(32);
  }

  /** Ids of the datastores declared in the policy. */
  datastores(): string[] {
    return [...this.models.keys()];
  }

  /** Collections holding data of these categories (or below them), with their timestamp column: what a retention rule reaches. */
  collectionsFor(categories: readonly string[]): Array<{ datastore: string; collection: string; timestamp: string | undefined; categories: string[] }> {
    const out: Array<{ datastore: string; collection: string; timestamp: string | undefined; categories: string[] }> = [];
    for (const model of this.models.values()) {
      for (const collection of model.collections.values()) {
        const held = collection.fields.map((field) => field.category).filter((category) => categories.some((reference) => covers(reference, category)));
        if (held.length > 0) out.push({ datastore: model.id, collection: collection.name, timestamp: collection.timestamp, categories: [...new Set(held)] });
      }
    }
    return out;
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
        if (!options.dryRun) await this.apply(session, model, plans);
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
    const plan: RowPlan = { collection, key: keyOf(collection, row), action: 'none', set: {}, perRow: false, changedFields: [], kept: new Map() };
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
    if (!collection.exception) this.eraseFields(plan, row);
    if (plan.kept.size > 0 && collection.restrictColumn && !isTrue(row[collection.restrictColumn])) {
      plan.set[collection.restrictColumn] = true;
    }
    if (Object.keys(plan.set).length > 0) plan.action = 'update';
    return plan;
  }

  /** The value a strategy writes, or undefined when the field already holds nothing personal. */
  private erasedValue(field: FieldModel, current: unknown): { value: unknown; perRow: boolean } | undefined {
    if (current === null || current === undefined) return undefined;
    switch (field.erase) {
      case 'set_null':
      case 'delete_row':
        // delete_row on a row that must stay (something below it is kept): its fields are emptied instead.
        return { value: null, perRow: false };
      case 'fixed':
        return String(current) === String(field.eraseValue) ? undefined : { value: field.eraseValue, perRow: false };
      case 'hash': {
        const text = current instanceof Date ? current.toISOString() : String(current);
        // A second erasure finds the hash, not the person's value: leave it.
        if (/^[0-9a-f]{64}$/.test(text)) return undefined;
        return { value: createHmac('sha256', this.hashKey).update(`${field.name}\u0000${text}`).digest('hex'), perRow: true };
      }
      case 'random':
        return { value: randomBytes(16).toString('hex'), perRow: true };
    }
  }

  /** Applies planned changes, children before parents; batched where the assignments are the same. */
  private async apply(session: SqlSession, model: DatasetModel, plans: RowPlan[]): Promise<void> {
    const dialect = session.dialect;
    for (const name of model.order) {
      const collection = model.collections.get(name)!;
      const mine = plans.filter((plan) => plan.collection === collection);
      if (mine.length === 0) continue;
      const table = dialect.quote(collection.name);
      const deletes = mine.filter((plan) => plan.action === 'delete');
      for (let start = 0; start < deletes.length; start += 500) {
        const params = new Params(dialect);
        const where = inList(dialect, params, collection.primaryKey, deletes.slice(start, start + 500).map((plan) => plan.key));
        await session.execute(`delete from ${table} where ${where}`, params.values);
      }
      const groups = new Map<string, RowPlan[]>();
      for (const plan of mine) {
        if (plan.action !== 'update') continue;
        const group = plan.perRow ? `row:${groups.size}` : JSON.stringify(Object.entries(plan.set));
        groups.set(group, [...(groups.get(group) ?? []), plan]);
      }
      for (const group of groups.values()) {
        const set = group[0]!.set;
        for (let start = 0; start < group.length; start += 500) {
          const params = new Params(dialect);
          const assignments = Object.entries(set).map(([column, value]) => `${dialect.quote(column)} = ${params.add(value === true ? dialect.trueValue : value)}`);
          const where = inList(dialect, params, collection.primaryKey, group.slice(start, start + 500).map((plan) => plan.key));
          await session.execute(`update ${table} set ${assignments.join(', ')} where ${where}`, params.values);
        }
      }
    }
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
   * Retention: deletes or anonymises the rows of one collection whose timestamp is before
   * `before`, a batch per transaction (so a sweep over millions of rows never holds a long
   * lock), in primary-key order. Anonymising applies each field's erasure strategy, except
   * delete_row (the row stays, its fields are emptied) and fields kept under an exception.
   */
  /**
   * The keys of the rows of one collection that belong to these people (each entry: one
   * person's identities), for `expire`'s `skip`: what a legal hold keeps out of a sweep.
   */
  async heldRowKeys(datastoreId: string, collectionName: string, people: ReadonlyArray<IdentityInput[]>, actor?: Actor): Promise<Set<string>> {
    const model = this.model(datastoreId);
    if (!model.collections.has(collectionName)) throw new PledgeError('dataset_not_found', `datastore "${datastoreId}" declares no collection "${collectionName}"`);
    // One walk per datastore and list of people: a sweep asks once for each of its collections.
    let walks = this.heldWalks.get(people);
    if (!walks) this.heldWalks.set(people, (walks = new Map()));
    let walk = walks.get(datastoreId);
    if (!walk) walks.set(datastoreId, (walk = this.rowKeysByCollection(model, people, actor)));
    return new Set((await walk).get(collectionName));
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

  async expire(datastoreId: string, collectionName: string, options: ExpireOptions): Promise<{ rows: number; skipped: number }> {
    const model = this.model(datastoreId);
    const collection = model.collections.get(collectionName);
    if (!collection) throw new PledgeError('dataset_not_found', `datastore "${datastoreId}" declares no collection "${collectionName}"`);
    if (!collection.timestamp) throw new PledgeError('dataset_no_timestamp', `collection "${collectionName}" of datastore "${datastoreId}" declares no timestamp column, so its rows cannot be expired`);
    const batchSize = Math.max(1, Math.min(options.batchSize ?? 1000, 10_000));
    const store = this.datastore(model);
    let done = 0;
    let skipped = 0;
    if (store.kind === 'http') {
      if (options.skip && options.skip.size > 0) throw new PledgeError('dataset_protocol_error', `datastore "${datastoreId}" is reached over HTTP, whose expiry cannot leave held people's rows alone; release the holds or expire it by hand`);
      done = (await store.http.expire(collectionName, options)).rows;
      options.onProgress?.(done);
    } else {
      const timestamp = collection.timestamp;
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
            let changed = 0;
            const skip = options.skip;
            const due = skip && skip.size > 0 ? rows.filter((row) => !skip.has(rowKey(collection.primaryKey, (column) => row[column]))) : rows;
            const held = rows.length - due.length;
            if (options.action === 'delete') {
              changed = due.length;
              if (!options.dryRun && due.length > 0) {
                const deleteParams = new Params(dialect);
                const keys = inList(dialect, deleteParams, collection.primaryKey, due.map((row) => keyOf(collection, row)));
                await session.execute(`delete from ${dialect.quote(collection.name)} where ${keys}`, deleteParams.values);
              }
            } else {
              const plans = due.map((row) => this.planAnonymisation(collection, row)).filter((plan) => plan.action === 'update');
              changed = plans.length;
              if (!options.dryRun) await this.apply(session, { ...model, order: [collection.name] }, plans);
            }
            return { rows, changed, held };
          };
          const { rows, changed, held } = options.dryRun ? await store.sql.read(batch) : await store.sql.write(batch);
          done += changed;
          skipped += held;
          if (rows.length > 0) options.onProgress?.(done);
          if (rows.length < batchSize) break;
          last = keyOf(collection, rows[rows.length - 1]!);
        }
      });
    }
    await this.deps.audit.record([
      this.auditEvent(SYSTEM, 'dataset.expire', datastoreId, undefined, { collection: collectionName, action: options.action, dry_run: options.dryRun, rows: done, skipped_by_hold: skipped }),
    ]);
    return { rows: done, skipped };
  }

  private planAnonymisation(collection: CollectionModel, row: Row): RowPlan {
    const plan: RowPlan = { collection, key: keyOf(collection, row), action: 'none', set: {}, perRow: false, changedFields: [], kept: new Map() };
    if (collection.exception) return plan;
    this.eraseFields(plan, row);
    if (plan.changedFields.length > 0) plan.action = 'update';
    return plan;
  }

  /** Adds to `plan` each field's erased value (its strategy), but keys and fields an exception keeps. */
  private eraseFields(plan: RowPlan, row: Row): void {
    for (const field of plan.collection.fields) {
      if (field.primaryKey || field.exception) continue;
      const change = this.erasedValue(field, row[field.name]);
      if (!change) continue;
      plan.set[field.name] = change.value;
      plan.perRow ||= change.perRow;
      plan.changedFields.push(field.name);
    }
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

/** A flag as each driver returns it: true, 1, 1n (SQLite's safe integers), '1', 't'. */
function isTrue(value: unknown): boolean {
  if (value === true || value === 't' || value === 'true') return true;
  return (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'string') && Number(value) === 1;
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
