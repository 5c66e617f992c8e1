import type { Kysely, Transaction } from 'kysely';
import type { Tables } from '../core/db.tables.js';
import type { RequestPackagesTable, RequestStatus, RequestsTable, RequestTasksTable } from './requests.tables.js';

type Executor = Kysely<Tables> | Transaction<Tables>;

export const OPEN_STATUSES: readonly RequestStatus[] = ['identity_unverified', 'pending', 'approved', 'in_progress'];

export interface ListFilter {
  status?: RequestStatus;
  type?: string;
  /** Only open requests whose (extended) deadline has passed at this instant. */
  overdueAt?: string;
  /** Only open requests due before this instant that were not reminded yet. */
  remindBefore?: string;
  after?: string;
  limit: number;
}

/** The only code that touches the requests, request_tasks and request_packages tables. */
export const requestsStore = {
  insert: (executor: Executor, row: RequestsTable) => executor.insertInto('requests').values(row).execute(),

  get: (executor: Executor, id: string) => executor.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirst(),

  /**
   * Updates a request only while it is in `from` (a compare-and-set: two concurrent transitions
   * cannot both succeed). Returns whether it changed.
   */
  async update(executor: Executor, id: string, changes: Partial<Omit<RequestsTable, 'id'>>, from?: readonly RequestStatus[]): Promise<boolean> {
    let query = executor.updateTable('requests').set(changes).where('id', '=', id);
    if (from) query = query.where('status', 'in', from);
    const result = await query.executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  },

  async list(executor: Executor, filter: ListFilter): Promise<RequestsTable[]> {
    let query = executor.selectFrom('requests').selectAll();
    if (filter.status) query = query.where('status', '=', filter.status);
    if (filter.type) query = query.where('type', '=', filter.type as RequestsTable['type']);
    if (filter.overdueAt || filter.remindBefore) query = query.where('status', 'in', OPEN_STATUSES);
    if (filter.overdueAt) {
      const at = filter.overdueAt;
      query = query.where((eb) => eb.or([eb.and([eb('extended_due_at', 'is', null), eb('due_at', '<', at)]), eb('extended_due_at', '<', at)]));
    }
    if (filter.remindBefore) {
      const before = filter.remindBefore;
      query = query.where('reminded_at', 'is', null).where((eb) => eb.or([eb.and([eb('extended_due_at', 'is', null), eb('due_at', '<', before)]), eb('extended_due_at', '<', before)]));
    }
    if (filter.after) query = query.where('id', '<', filter.after);
    return query.orderBy('id', 'desc').limit(filter.limit).execute();
  },

  tasksOf: (executor: Executor, requestId: string) => executor.selectFrom('request_tasks').selectAll().where('request_id', '=', requestId).orderBy('created_at').orderBy('datastore').execute(),

  getTask: (executor: Executor, id: string) => executor.selectFrom('request_tasks').selectAll().where('id', '=', id).executeTakeFirst(),

  insertTasks: async (executor: Executor, rows: RequestTasksTable[]) => {
    if (rows.length > 0) await executor.insertInto('request_tasks').values(rows).execute();
  },

  async updateTask(executor: Executor, id: string, changes: Partial<Omit<RequestTasksTable, 'id' | 'request_id'>>): Promise<void> {
    await executor.updateTable('request_tasks').set(changes).where('id', '=', id).execute();
  },

  async countUnfinishedTasks(executor: Executor, requestId: string): Promise<number> {
    const row = await executor.selectFrom('request_tasks').select((eb) => eb.fn.countAll().as('n')).where('request_id', '=', requestId).where('state', '!=', 'done').executeTakeFirstOrThrow();
    return Number(row.n);
  },

  async upsertPackage(executor: Executor, row: RequestPackagesTable): Promise<void> {
    await executor
      .insertInto('request_packages')
      .values(row)
      .onConflict((conflict) => conflict.columns(['request_id', 'format']).doUpdateSet({ id: row.id, content: row.content, bytes: row.bytes, created_at: row.created_at, expires_at: row.expires_at, deleted_at: null }))
      .execute();
  },

  packagesOf: (executor: Executor, requestId: string) =>
    executor.selectFrom('request_packages').select(['id', 'request_id', 'format', 'bytes', 'created_at', 'expires_at', 'deleted_at']).where('request_id', '=', requestId).orderBy('format').execute(),

  getPackage: (executor: Executor, id: string) => executor.selectFrom('request_packages').selectAll().where('id', '=', id).executeTakeFirst(),

  expiredPackages: (executor: Executor, now: string) =>
    executor.selectFrom('request_packages').select(['id', 'request_id', 'format']).where('deleted_at', 'is', null).where('expires_at', '<', now).limit(500).execute(),

  async deletePackage(executor: Executor, id: string, now: string): Promise<void> {
    await executor.updateTable('request_packages').set({ content: null, deleted_at: now }).where('id', '=', id).execute();
  },
};
