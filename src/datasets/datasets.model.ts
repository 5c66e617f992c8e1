import type { DatasetDeclaration, ErasureStrategy } from '../policy/policy.schema.js';
import { buildGraph, erasureOrder, parentsFirstOrder, type OwnershipEdge } from './datasets.graph.js';

/**
 * A dataset declaration compiled once for the planner: the columns each read selects, the
 * walk's edges per collection, which collections may be reached twice (and so need
 * de-duplication), and the order erasure follows.
 */
export interface FieldModel {
  name: string;
  category: string;
  identity?: string;
  erase: ErasureStrategy;
  eraseValue?: string | number | boolean;
  exception?: string;
  primaryKey: boolean;
}

export interface CollectionModel {
  name: string;
  primaryKey: string[];
  timestamp?: string;
  fields: FieldModel[];
  /** Everything a read selects: keys, fields, the timestamp and the columns references join on. */
  columns: string[];
  outgoing: OwnershipEdge[];
  /** Declared foreign keys into this collection: `child.childColumn` refers to `column` here. */
  referencedBy: Array<{ child: string; childColumn: string; column: string }>;
  /** Identity kind → the columns holding it. */
  identities: Map<string, string[]>;
  exception?: string;
  restrictColumn?: string;
  deletesRows: boolean;
  /**
   * Whether one row may be reached twice in a walk (several identities or inbound paths, or
   * an edge leaving from a column that is not unique). Only these keep a set of keys seen;
   * the others stream with constant memory.
   */
  dedupe: boolean;
}

export interface DatasetModel {
  id: string;
  declaration: DatasetDeclaration;
  collections: Map<string, CollectionModel>;
  entries: string[];
  /** Children before parents. */
  order: string[];
  /** Parents before children. */
  parentsFirst: string[];
  /** Collections whose rows erasure may not delete: something below them is kept. */
  undeletable: Set<string>;
}

export function compileDataset(dataset: DatasetDeclaration): DatasetModel {
  const graph = buildGraph(dataset);
  const collections = new Map<string, CollectionModel>();
  const inbound = new Map<string, number>();
  const nonUniqueInbound = new Set<string>();
  for (const edge of graph.ownership) {
    inbound.set(edge.to, (inbound.get(edge.to) ?? 0) + 1);
    const from = dataset.collections.find((collection) => collection.name === edge.from)!;
    if (!(from.primary_key.length === 1 && from.primary_key[0] === edge.fromColumn)) nonUniqueInbound.add(edge.to);
  }
  for (const declared of dataset.collections) {
    const fields: FieldModel[] = (declared.fields ?? []).map((field) => ({
      name: field.name,
      category: field.category,
      ...(field.identity ? { identity: field.identity } : {}),
      erase: field.erase ?? (declared.primary_key.includes(field.name) ? 'delete_row' : 'set_null'),
      ...(field.erase_value !== undefined ? { eraseValue: field.erase_value } : {}),
      ...(field.exception ? { exception: field.exception } : {}),
      primaryKey: declared.primary_key.includes(field.name),
    }));
    const outgoing = graph.ownership.filter((edge) => edge.from === declared.name);
    const identities = new Map<string, string[]>();
    for (const field of fields) if (field.identity) identities.set(field.identity, [...(identities.get(field.identity) ?? []), field.name]);
    const identityColumns = [...identities.values()].reduce((sum, columns) => sum + columns.length, 0);
    const referencedBy = graph.dependencies.filter((edge) => edge.parent === declared.name).map((edge) => ({ child: edge.child, childColumn: edge.childColumn, column: edge.parentColumn }));
    // The timestamp and both ends of every reference are read too: retention decides from
    // them whether a row is due and whether rows referring to it stay.
    const columns = [
      ...new Set([
        ...declared.primary_key,
        ...fields.map((field) => field.name),
        ...outgoing.map((edge) => edge.fromColumn),
        ...(declared.references ?? []).map((reference) => reference.field),
        ...referencedBy.map((edge) => edge.column),
        ...(declared.timestamp ? [declared.timestamp] : []),
        ...(declared.restrict_column ? [declared.restrict_column] : []),
      ]),
    ];
    collections.set(declared.name, {
      name: declared.name,
      primaryKey: declared.primary_key,
      ...(declared.timestamp ? { timestamp: declared.timestamp } : {}),
      fields,
      columns,
      outgoing,
      referencedBy,
      identities,
      ...(declared.exception ? { exception: declared.exception } : {}),
      ...(declared.restrict_column ? { restrictColumn: declared.restrict_column } : {}),
      // A key field without an explicit strategy does not delete the row by itself.
      deletesRows: (declared.fields ?? []).some((field) => field.erase === 'delete_row'),
      dedupe: identityColumns + (inbound.get(declared.name) ?? 0) > 1 || nonUniqueInbound.has(declared.name),
    });
  }
  // A kept row must keep the rows it refers to: no delete above anything under an exception.
  const keepsRows = (name: string) => {
    const model = collections.get(name)!;
    return model.exception !== undefined || model.fields.some((field) => field.exception);
  };
  const undeletable = new Set<string>();
  const markParents = (name: string) => {
    for (const edge of graph.dependencies) {
      if (edge.child === name && !undeletable.has(edge.parent)) {
        undeletable.add(edge.parent);
        markParents(edge.parent);
      }
    }
  };
  for (const name of graph.collections) if (keepsRows(name)) markParents(name);
  return { id: dataset.id, declaration: dataset, collections, entries: graph.entries, order: erasureOrder(graph), parentsFirst: parentsFirstOrder(graph), undeletable };
}

/** Every environment variable the policy's datasets name: what config's datasetEnv must read. */
export function datasetVariableNames(datasets: readonly DatasetDeclaration[] | undefined): string[] {
  const names = new Set<string>();
  for (const dataset of datasets ?? []) {
    names.add(dataset.connection.env);
    if (dataset.connection.secret_env) names.add(dataset.connection.secret_env);
  }
  return [...names];
}
