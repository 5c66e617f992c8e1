import { createHmac, randomBytes } from 'node:crypto';
import type { CollectionModel, DatasetModel, FieldModel } from './datasets.model.js';
import { keyOf } from './datasets.planner.js';
import { inList, Params, type Row, type SqlSession } from './datasets.sql.js';

/**
 * What every change to a person's rows is made of, whoever asks for it (an erasure request,
 * a retention sweep): a plan per row, the values the fields' strategies write, and one way
 * of applying plans — children before parents, batched where the assignments are the same.
 */
export interface RowPlan {
  collection: CollectionModel;
  key: unknown[];
  action: 'update' | 'delete' | 'none';
  set: Record<string, unknown>;
  /** Whether `set` holds values computed per row (hash, random): such rows are updated one by one. */
  perRow: boolean;
  changedFields: string[];
  /** Exception id → the fields kept under it. */
  kept: Map<string, string[]>;
}

export function emptyPlan(collection: CollectionModel, row: Row): RowPlan {
  return { collection, key: keyOf(collection, row), action: 'none', set: {}, perRow: false, changedFields: [], kept: new Map() };
}

/** A flag as each driver returns it: true, 1, 1n (SQLite's safe integers), '1', 't'. */
export function isTrue(value: unknown): boolean {
  if (value === true || value === 't' || value === 'true') return true;
  return (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'string') && Number(value) === 1;
}

export function hasValue(value: unknown): boolean {
  return value !== null && value !== undefined;
}

/** The erasure strategies of the policy (`erase:` on a field), with the key of `hash`. */
export class FieldEraser {
  constructor(private readonly hashKey: Buffer) {}

  /** The value a strategy writes, or undefined when the field already holds nothing personal. */
  erasedValue(field: FieldModel, current: unknown): { value: unknown; perRow: boolean } | undefined {
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

  /**
   * Adds to `plan` each chosen field's erased value (its strategy). Primary keys are never
   * changed; by default neither are fields an exception keeps.
   */
  eraseFields(plan: RowPlan, row: Row, chosen: (field: FieldModel) => boolean = (field) => !field.exception): void {
    for (const field of plan.collection.fields) if (chosen(field)) this.eraseField(plan, field, row[field.name]);
  }

  /** Adds one field's erased value to `plan`; a primary key is never changed. */
  eraseField(plan: RowPlan, field: FieldModel, current: unknown): void {
    if (field.primaryKey) return;
    const change = this.erasedValue(field, current);
    if (!change) return;
    plan.set[field.name] = change.value;
    plan.perRow ||= change.perRow;
    plan.changedFields.push(field.name);
  }
}

/** Applies planned changes, children before parents; batched where the assignments are the same. */
export async function applyPlans(session: SqlSession, model: Pick<DatasetModel, 'collections' | 'order'>, plans: readonly RowPlan[]): Promise<void> {
  const dialect = session.dialect;
  const byCollection = new Map<CollectionModel, RowPlan[]>();
  for (const plan of plans) byCollection.set(plan.collection, [...(byCollection.get(plan.collection) ?? []), plan]);
  for (const name of model.order) {
    const collection = model.collections.get(name)!;
    const mine = byCollection.get(collection);
    if (!mine) continue;
    const table = dialect.quote(collection.name);
    const deletes = mine.filter((plan) => plan.action === 'delete');
    // Keys per statement: each statement is a round trip; at most 16,000 bound values stays
    // well under every database's limit.
    const perStatement = Math.min(2_000, Math.floor(16_000 / Math.max(1, collection.primaryKey.length)));
    for (let start = 0; start < deletes.length; start += perStatement) {
      const params = new Params(dialect);
      const where = inList(dialect, params, collection.primaryKey, deletes.slice(start, start + perStatement).map((plan) => plan.key));
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
      for (let start = 0; start < group.length; start += perStatement) {
        const params = new Params(dialect);
        const assignments = Object.entries(set).map(([column, value]) => `${dialect.quote(column)} = ${params.add(value === true ? dialect.trueValue : value)}`);
        const where = inList(dialect, params, collection.primaryKey, group.slice(start, start + perStatement).map((plan) => plan.key));
        await session.execute(`update ${table} set ${assignments.join(', ')} where ${where}`, params.values);
      }
    }
  }
}

/**
 * How many rows refer to each of these values of `column` through one declared foreign key:
 * what decides whether a row may be deleted without breaking a reference. Values are
 * compared as text (drivers return keys as numbers, bigints or strings).
 */
export async function referringCounts(session: SqlSession, child: { name: string; column: string }, values: readonly unknown[]): Promise<Map<string, number>> {
  const dialect = session.dialect;
  const counts = new Map<string, number>();
  // Bound as read (a number stays a number), so the column's index serves the lookup.
  const distinct = [...new Map(values.filter(hasValue).map((value) => [String(value), value])).values()];
  for (let start = 0; start < distinct.length; start += 500) {
    const params = new Params(dialect);
    const column = dialect.quote(child.column);
    const where = inList(dialect, params, [child.column], distinct.slice(start, start + 500).map((value) => [value]));
    const rows = await session.query(`select ${column} as ${dialect.quote('v')}, count(*) as ${dialect.quote('n')} from ${dialect.quote(child.name)} where ${where} group by ${column}`, params.values);
    for (const row of rows) counts.set(String(row.v), Number(row.n));
  }
  return counts;
}

/**
 * The candidate rows that rows of another collection would still refer to: counted in the
 * datastore, less the referring rows that go in the same batch (`going`, by collection). A
 * timestamp step decides before any row referring to its own goes (its collections run
 * parents first): it passes no `going`.
 */
export async function referredRows(session: SqlSession, collection: CollectionModel, candidates: readonly Row[], going?: ReadonlyMap<string, readonly Row[]>): Promise<Set<Row>> {
  const referred = new Set<Row>();
  if (candidates.length === 0) return referred;
  for (const edge of collection.referencedBy) {
    const counts = await referringCounts(session, { name: edge.child, column: edge.childColumn }, candidates.map((row) => row[edge.column]));
    const leaving = new Map<string, number>();
    for (const row of going?.get(edge.child) ?? []) {
      const value = String(row[edge.childColumn]);
      leaving.set(value, (leaving.get(value) ?? 0) + 1);
    }
    for (const row of candidates) {
      const value = String(row[edge.column]);
      if ((counts.get(value) ?? 0) - (leaving.get(value) ?? 0) > 0) referred.add(row);
    }
  }
  return referred;
}
