import type { Kysely, Transaction } from 'kysely';
import type { Tables } from '../core/db.tables.js';
import { compiledFirst, type DialectName } from '../core/db.js';
import type { ApiKeysTable, StaffSessionsTable, StaffUsersTable } from './staff.tables.js';

type Executor = Kysely<Tables> | Transaction<Tables>;

const apiKeyBySecretHash = compiledFirst((db: Kysely<Tables>, secretHash: string) => db.selectFrom('api_keys').selectAll().where('secret_hash', '=', secretHash));

/** A session with what authentication needs from its staff account, in one query. */
export interface SessionWithStaff extends StaffSessionsTable {
  role: string;
  name: string;
  disabled_at: string | null;
}

/** The only code that touches the staff_users, staff_sessions and api_keys tables. */
export const staffStore = {
  // --- staff users ---------------------------------------------------------------------------

  async insertStaff(executor: Executor, row: StaffUsersTable): Promise<void> {
    await executor.insertInto('staff_users').values(row).execute();
  },

  findStaffByEmail: (executor: Executor, email: string) =>
    executor.selectFrom('staff_users').selectAll().where('email', '=', email).executeTakeFirst(),

  findStaffById: (executor: Executor, id: string) => executor.selectFrom('staff_users').selectAll().where('id', '=', id).executeTakeFirst(),

  listStaff: (executor: Executor) => executor.selectFrom('staff_users').selectAll().orderBy('created_at').orderBy('id').execute(),

  /**
   * Ids of the active owners. On PostgreSQL the rows are locked until the transaction ends, so
   * two managers demoting the last two owners at the same moment cannot both succeed.
   */
  async activeOwnerIds(executor: Executor, dialect: DialectName): Promise<string[]> {
    let query = executor.selectFrom('staff_users').select('id').where('role', '=', 'owner').where('disabled_at', 'is', null);
    // SQLite has no row locks; its single writer serialises the transactions instead.
    if (dialect === 'postgres') query = query.forUpdate();
    return (await query.execute()).map((row) => row.id);
  },

  async setRole(executor: Executor, id: string, role: string, now: string): Promise<void> {
    await executor.updateTable('staff_users').set({ role, updated_at: now }).where('id', '=', id).execute();
  },

  /** Counts one more consecutive failure and returns the new count. */
  async addLoginFailure(executor: Executor, id: string, now: string): Promise<number> {
    const row = await executor
      .updateTable('staff_users')
      .set((eb) => ({ failed_logins: eb('failed_logins', '+', 1), updated_at: now }))
      .where('id', '=', id)
      .returning('failed_logins')
      .executeTakeFirstOrThrow();
    return Number(row.failed_logins);
  },

  /** Locks the account until `until` and starts counting failures afresh. */
  async lock(executor: Executor, id: string, until: string, now: string): Promise<void> {
    await executor.updateTable('staff_users').set({ locked_until: until, failed_logins: 0, updated_at: now }).where('id', '=', id).execute();
  },

  async unlock(executor: Executor, id: string, now: string): Promise<void> {
    await executor.updateTable('staff_users').set({ locked_until: null, failed_logins: 0, updated_at: now }).where('id', '=', id).execute();
  },

  /** A successful sign-in clears the failure count; `passwordHash` replaces an outdated hash. */
  async recordLoginSuccess(executor: Executor, id: string, now: string, passwordHash?: string): Promise<void> {
    await executor
      .updateTable('staff_users')
      .set({ failed_logins: 0, locked_until: null, last_login_at: now, ...(passwordHash ? { password_hash: passwordHash, updated_at: now } : {}) })
      .where('id', '=', id)
      .execute();
  },

  async disable(executor: Executor, id: string, now: string): Promise<void> {
    await executor.updateTable('staff_users').set({ disabled_at: now, updated_at: now }).where('id', '=', id).execute();
  },

  // --- sessions ------------------------------------------------------------------------------

  async insertSession(executor: Executor, row: StaffSessionsTable): Promise<void> {
    await executor.insertInto('staff_sessions').values(row).execute();
  },

  findSession: (executor: Executor, id: string): Promise<SessionWithStaff | undefined> =>
    executor
      .selectFrom('staff_sessions')
      .innerJoin('staff_users', 'staff_users.id', 'staff_sessions.staff_id')
      .select([
        'staff_sessions.id',
        'staff_sessions.staff_id',
        'staff_sessions.created_at',
        'staff_sessions.expires_at',
        'staff_sessions.last_seen_at',
        'staff_sessions.revoked_at',
        'staff_users.role',
        'staff_users.name',
        'staff_users.disabled_at',
      ])
      .where('staff_sessions.id', '=', id)
      .executeTakeFirst(),

  async touchSession(executor: Executor, id: string, now: string): Promise<void> {
    await executor.updateTable('staff_sessions').set({ last_seen_at: now }).where('id', '=', id).where('revoked_at', 'is', null).execute();
  },

  async revokeSession(executor: Executor, id: string, now: string): Promise<boolean> {
    const result = await executor.updateTable('staff_sessions').set({ revoked_at: now }).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  },

  async revokeSessionsOf(executor: Executor, staffId: string, now: string): Promise<number> {
    const result = await executor.updateTable('staff_sessions').set({ revoked_at: now }).where('staff_id', '=', staffId).where('revoked_at', 'is', null).executeTakeFirst();
    return Number(result.numUpdatedRows);
  },

  /** Removes sessions that ended before `cutoff` (housekeeping; they can never be used again). */
  async deleteSessionsEndedBefore(executor: Executor, cutoff: string): Promise<number> {
    const result = await executor
      .deleteFrom('staff_sessions')
      .where((eb) => eb.or([eb('expires_at', '<', cutoff), eb('revoked_at', '<', cutoff)]))
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  },

  // --- API keys ------------------------------------------------------------------------------

  async insertApiKey(executor: Executor, row: ApiKeysTable): Promise<void> {
    await executor.insertInto('api_keys').values(row).execute();
  },

  findApiKeyBySecretHash: (executor: Executor, secretHash: string) => apiKeyBySecretHash(executor, secretHash),

  findApiKeyById: (executor: Executor, id: string) => executor.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst(),

  listApiKeys: (executor: Executor) => executor.selectFrom('api_keys').selectAll().orderBy('created_at').orderBy('id').execute(),

  async revokeApiKey(executor: Executor, id: string, now: string): Promise<boolean> {
    const result = await executor.updateTable('api_keys').set({ revoked_at: now }).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  },

  async touchApiKey(executor: Executor, id: string, now: string): Promise<void> {
    await executor.updateTable('api_keys').set({ last_used_at: now }).where('id', '=', id).execute();
  },
};

export function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === '23505';
}
