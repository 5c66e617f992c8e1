import { normalizeIdentity } from '../subjects/identities.js';
import type { IdentityInput } from '../subjects/subjects.service.js';
import type { CollectionModel, DatasetModel } from './datasets.model.js';
import { after, inList, Params, type Row, type SqlSession } from './datasets.sql.js';

/**
 * Walks a datastore from a person's identities: the collections holding an identity are read
 * with `column IN (…)`, then every ownership edge is followed with the key values of the
 * rows just read, depth first, one page at a time. Memory holds one page per level of the
 * graph (plus the keys of the few collections that can be reached twice), never the
 * person's whole data: a customer with a million log-in records streams like one with ten.
 */
export const PAGE_SIZE = 1000;
/** Values per IN list: well under every driver's parameter limit (SQLite's is 32,766). */
export const IN_CHUNK = 500;

export interface WalkOptions {
  /** Lock the rows read (inside a write transaction), so they cannot change before they are written. */
  lock: boolean;
  /** Called with each page of rows not seen before in this walk. */
  visit: (collection: CollectionModel, rows: Row[]) => void | Promise<void>;
}

/** The values to look for per identity kind: as given (trimmed) and normalised, when they differ. */
export function identityValues(identities: readonly IdentityInput[]): Map<string, string[]> {
  const byKind = new Map<string, Set<string>>();
  for (const identity of identities) {
    const values = byKind.get(identity.kind) ?? new Set<string>();
    values.add(identity.value.trim());
    values.add(normalizeIdentity(identity.kind, identity.value));
    byKind.set(identity.kind, values);
  }
  return new Map([...byKind].map(([kind, values]) => [kind, [...values]]));
}

export function keyOf(collection: CollectionModel, row: Row): unknown[] {
  return collection.primaryKey.map((column) => row[column]);
}

export async function walk(session: SqlSession, model: DatasetModel, identities: readonly IdentityInput[], options: WalkOptions): Promise<void> {
  const dialect = session.dialect;
  const values = identityValues(identities);
  const seen = new Map<string, Set<string>>();

  const read = async (collection: CollectionModel, column: string, keys: readonly unknown[]): Promise<void> => {
    for (let start = 0; start < keys.length; start += IN_CHUNK) {
      const chunk = keys.slice(start, start + IN_CHUNK).map((key) => [key]);
      let last: unknown[] | undefined;
      for (;;) {
        const params = new Params(dialect);
        let where = inList(dialect, params, [column], chunk);
        if (last) where += ` and ${after(dialect, params, collection.primaryKey, last)}`;
        const sql =
          `select ${collection.columns.map(dialect.quote).join(', ')} from ${dialect.quote(collection.name)} where ${where}` +
          ` order by ${collection.primaryKey.map(dialect.quote).join(', ')} limit ${PAGE_SIZE}${options.lock ? dialect.lockSuffix : ''}`;
        const rows = await session.query(sql, params.values);
        let fresh = rows;
        if (collection.dedupe) {
          const keysSeen = seen.get(collection.name) ?? new Set<string>();
          seen.set(collection.name, keysSeen);
          fresh = rows.filter((row) => {
            const key = JSON.stringify(keyOf(collection, row));
            if (keysSeen.has(key)) return false;
            keysSeen.add(key);
            return true;
          });
        }
        if (fresh.length > 0) {
          await options.visit(collection, fresh);
          for (const edge of collection.outgoing) {
            const next = [...new Set(fresh.map((row) => row[edge.fromColumn]).filter((value) => value !== null && value !== undefined))];
            if (next.length > 0) await read(model.collections.get(edge.to)!, edge.toColumn, next);
          }
        }
        if (rows.length < PAGE_SIZE) break;
        last = keyOf(collection, rows[rows.length - 1]!);
      }
    }
  };

  for (const name of model.entries) {
    const collection = model.collections.get(name)!;
    for (const [kind, columns] of collection.identities) {
      const wanted = values.get(kind);
      if (!wanted) continue;
      for (const column of columns) await read(collection, column, wanted);
    }
  }
}
