import type { DatasetDeclaration } from '../policy/policy.schema.js';

/**
 * The graph of a datastore as the policy declares it. Two views of the same references:
 *
 * - the ownership graph, which the planner walks from the person's identities: an edge
 *   customers → orders says "the orders whose customer_id is the id of one of the person's
 *   customers rows are the person's too";
 * - the dependency graph of foreign keys, which erasure follows: a row that refers to another
 *   (orders.customer_id → customers.id) is changed before the row it refers to, so a
 *   restricting foreign key never blocks a delete.
 *
 * Pure: used by the policy checks (without a connection) and by the planner.
 */
export interface OwnershipEdge {
  /** Rows of `to` whose `toColumn` is among the `fromColumn` values of the person's `from` rows. */
  from: string;
  fromColumn: string;
  to: string;
  toColumn: string;
  /** Where the reference is declared, for messages: collections[collection].references[index]. */
  declaredIn: string;
  referenceIndex: number;
}

export interface DependencyEdge {
  /** The collection holding the foreign key… */
  child: string;
  /** …its column… */
  childColumn: string;
  /** …and the collection and column it refers to. */
  parent: string;
  parentColumn: string;
  declaredIn: string;
  referenceIndex: number;
}

export interface DatasetGraph {
  collections: string[];
  /** Collections with an identity field: where every walk starts. */
  entries: string[];
  ownership: OwnershipEdge[];
  dependencies: DependencyEdge[];
  /** References whose target collection is not declared (the checks report them). */
  dangling: Array<{ declaredIn: string; referenceIndex: number; target: string }>;
}

export function buildGraph(dataset: Pick<DatasetDeclaration, 'collections'>): DatasetGraph {
  const names = new Set(dataset.collections.map((collection) => collection.name));
  const graph: DatasetGraph = { collections: [...names], entries: [], ownership: [], dependencies: [], dangling: [] };
  for (const collection of dataset.collections) {
    if (collection.fields?.some((field) => field.identity)) graph.entries.push(collection.name);
    collection.references?.forEach((reference, referenceIndex) => {
      const [target, column] = reference.to.split('.') as [string, string];
      if (!names.has(target)) {
        graph.dangling.push({ declaredIn: collection.name, referenceIndex, target });
        return;
      }
      const place = { declaredIn: collection.name, referenceIndex };
      graph.dependencies.push({ child: collection.name, childColumn: reference.field, parent: target, parentColumn: column, ...place });
      if ((reference.owner ?? 'target') === 'target') {
        graph.ownership.push({ from: target, fromColumn: column, to: collection.name, toColumn: reference.field, ...place });
      } else {
        graph.ownership.push({ from: collection.name, fromColumn: reference.field, to: target, toColumn: column, ...place });
      }
    });
  }
  return graph;
}

/** Collections the walk reaches from the entries. */
export function reachable(graph: DatasetGraph): Set<string> {
  const seen = new Set(graph.entries);
  const queue = [...graph.entries];
  while (queue.length > 0) {
    const current = queue.shift()!;
    for (const edge of graph.ownership) {
      if (edge.from === current && !seen.has(edge.to)) {
        seen.add(edge.to);
        queue.push(edge.to);
      }
    }
  }
  return seen;
}

/**
 * The first cycle found, as the edge that closes it and the path of collections around it
 * (first and last equal), or undefined.
 */
export function findCycle<E>(nodes: readonly string[], edges: readonly E[], ends: (edge: E) => [from: string, to: string]): { edge: E; path: string[] } | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): { edge: E; path: string[] } | undefined => {
    state.set(node, 'open');
    stack.push(node);
    for (const edge of edges) {
      const [from, to] = ends(edge);
      if (from !== node) continue;
      if (state.get(to) === 'open') return { edge, path: [...stack.slice(stack.indexOf(to)), to] };
      if (!state.has(to)) {
        const found = visit(to);
        if (found) return found;
      }
    }
    stack.pop();
    state.set(node, 'done');
    return undefined;
  };
  for (const node of nodes) {
    if (state.has(node)) continue;
    const found = visit(node);
    if (found) return found;
  }
  return undefined;
}

/**
 * Collections in the order erasure changes them: every collection before the ones it refers
 * to (children before parents). The graph is acyclic once the policy validated.
 */
export function erasureOrder(graph: DatasetGraph): string[] {
  return dependencyOrder(graph, (edge) => [edge.parent, edge.child]);
}

/**
 * Collections with every collection before the ones that refer to it (parents before
 * children), in declaration order where the references leave a choice. Retention's
 * timestamp steps run in this order: a parent row's fate is decided while the rows
 * referring to it are still as they were when the sweep started, so a dry run decides the
 * same.
 */
export function parentsFirstOrder(graph: DatasetGraph): string[] {
  return dependencyOrder(graph, (edge) => [edge.child, edge.parent]);
}

/** Depth-first over the references: `[of, first]` says `first` goes before `of`. */
function dependencyOrder(graph: DatasetGraph, ends: (edge: DatasetGraph['dependencies'][number]) => [of: string, first: string]): string[] {
  const order: string[] = [];
  const done = new Set<string>();
  const visit = (name: string) => {
    if (done.has(name)) return;
    done.add(name);
    for (const edge of graph.dependencies) {
      const [of, first] = ends(edge);
      if (of === name && first !== name) visit(first);
    }
    order.push(name);
  };
  for (const name of graph.collections) visit(name);
  return order;
}
