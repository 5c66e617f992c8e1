import { sql, type ExpressionBuilder, type Kysely, type Transaction } from 'kysely';
import type { Tables } from '../core/db.tables.js';
import type { DialectName } from '../core/db.js';
import type { CommsNoticeRunsTable, CommsOutboxTable, MessageStatus } from './comms.tables.js';

type Executor = Kysely<Tables> | Transaction<Tables>;

export interface OutboxFilter {
  status?: MessageStatus;
  kind?: CommsOutboxTable['kind'];
  subjectId?: string;
  /** Keyset pagination: ids after this one. */
  after?: string;
  limit: number;
}

/**
 * A message whose address or data is sealed under another KEK than `kekId`: its sealed value
 * does not start with `<kekId>.` (every KEK id has the same length, see keyId).
 */
function underAnotherKek(kekId: string) {
  const prefix = `${kekId}.`;
  const start = (column: 'to_sealed' | 'data_sealed') => sql<string>`substr(${sql.ref(column)}, 1, ${sql.lit(prefix.length)})`;
  return (eb: ExpressionBuilder<Tables, 'comms_outbox'>) =>
    eb.or([
      eb.and([eb('data_sealed', '<>', ''), eb(start('data_sealed'), '<>', prefix)]),
      eb.and([eb('to_sealed', 'is not', null), eb(start('to_sealed'), '<>', prefix)]),
    ]);
}

/** The only code that touches the comms tables (outbox, suppressions, topic states, notice runs, acceptances). */
export const commsStore = {
  /** Inserts messages; one whose idempotency key is stored already is skipped. Returns the ids inserted. */
  async insertMessages(executor: Executor, rows: CommsOutboxTable[]): Promise<string[]> {
    const inserted: string[] = [];
    // 19 columns a row: stay under every database's bound-parameter limit.
    for (let start = 0; start < rows.length; start += 200) {
      const result = await executor
        .insertInto('comms_outbox')
        .values(rows.slice(start, start + 200))
        .onConflict((conflict) => conflict.column('idempotency_key').doNothing())
        .returning('id')
        .execute();
      inserted.push(...result.map((row) => row.id));
    }
    return inserted;
  },

  byIdempotencyKey: (executor: Executor, key: string) => executor.selectFrom('comms_outbox').select(['id', 'status']).where('idempotency_key', '=', key).executeTakeFirst(),

  get: (executor: Executor, id: string) => executor.selectFrom('comms_outbox').selectAll().where('id', '=', id).executeTakeFirst(),

  list(executor: Executor, filter: OutboxFilter) {
    let query = executor
      .selectFrom('comms_outbox')
      .select(['id', 'kind', 'topic', 'purpose', 'subject_id', 'template', 'policy_version_id', 'status', 'attempts', 'next_attempt_at', 'last_error', 'created_at', 'updated_at', 'sent_at'])
      .orderBy('id')
      .limit(filter.limit);
    if (filter.status) query = query.where('status', '=', filter.status);
    if (filter.kind) query = query.where('kind', '=', filter.kind);
    if (filter.subjectId) query = query.where('subject_id', '=', filter.subjectId);
    if (filter.after) query = query.where('id', '>', filter.after);
    return query.execute();
  },

  async countByStatus(executor: Executor): Promise<Record<string, number>> {
    const rows = await executor.selectFrom('comms_outbox').select(['status', (eb) => eb.fn.countAll<number | string>().as('count')]).groupBy('status').execute();
    return Object.fromEntries(rows.map((row) => [row.status, Number(row.count)]));
  },

  /**
   * Claims up to `limit` due messages in one statement: queued ones whose time has come, and
   * ones left `sending` by a process whose lease ran out (it died mid-send). A claimed message
   * is `sending` until `leaseUntil` (kept in next_attempt_at, so one index finds both).
   * PostgreSQL: rows locked by another process's claim are skipped (FOR UPDATE SKIP LOCKED);
   * SQLite: the statement is the transaction's first, a write, so it holds the one writer lock.
   */
  claim(trx: Transaction<Tables>, dialect: DialectName, options: { now: string; leaseUntil: string; token: string; limit: number }) {
    return trx
      .updateTable('comms_outbox')
      .set({ status: 'sending', claim_token: options.token, claimed_until: options.leaseUntil, next_attempt_at: options.leaseUntil, attempts: sql<number>`attempts + 1`, updated_at: options.now })
      .where('id', 'in', (eb) => {
        const due = eb
          .selectFrom('comms_outbox')
          .select('id')
          .where('status', 'in', ['queued', 'sending'])
          .where('next_attempt_at', '<=', options.now)
          .orderBy('next_attempt_at')
          .limit(options.limit);
        return dialect === 'postgres' ? due.forUpdate().skipLocked() : due;
      })
      .returningAll()
      .execute();
  },

  async markDropped(executor: Executor, ids: readonly string[], reason: string, now: string): Promise<void> {
    if (ids.length === 0) return;
    await executor.updateTable('comms_outbox').set({ status: 'dropped', last_error: reason, claim_token: null, to_sealed: null, data_sealed: '', updated_at: now }).where('id', 'in', [...ids]).execute();
  },

  /** Records deliveries; only the holder of the claim may (a process whose lease ran out may not). */
  async markDelivered(executor: Executor, ids: readonly string[], token: string, status: 'sent' | 'stored', now: string): Promise<number> {
    let updated = 0;
    for (let start = 0; start < ids.length; start += 500) {
      const result = await executor
        .updateTable('comms_outbox')
        // Once delivered, nothing personal stays: the address and the template data (a code, a name) go.
      .set({ status, sent_at: now, updated_at: now, claim_token: null, claimed_until: null, to_sealed: null, data_sealed: '', last_error: null })
        .where('id', 'in', ids.slice(start, start + 500))
        .where('claim_token', '=', token)
        .executeTakeFirst();
      updated += Number(result.numUpdatedRows);
    }
    return updated;
  },

  async markAttemptFailed(executor: Executor, id: string, token: string, change: { status: 'queued' | 'failed'; nextAttemptAt: string; error: string; now: string }): Promise<void> {
    await executor
      .updateTable('comms_outbox')
      .set({ status: change.status, next_attempt_at: change.nextAttemptAt, last_error: change.error, claim_token: null, claimed_until: null, updated_at: change.now })
      .where('id', '=', id)
      .where('claim_token', '=', token)
      .execute();
  },

  /** Fails claimed messages at once, without another attempt (they cannot be sent as they are); only the claim's holder may. */
  async markFailed(executor: Executor, ids: readonly string[], token: string, error: string, now: string): Promise<void> {
    for (let start = 0; start < ids.length; start += 500) {
      await executor
        .updateTable('comms_outbox')
        .set({ status: 'failed', next_attempt_at: now, last_error: error, claim_token: null, claimed_until: null, updated_at: now })
        .where('id', 'in', ids.slice(start, start + 500))
        .where('claim_token', '=', token)
        .execute();
    }
  },

  /**
   * Puts failed messages back in the queue, due now, with their attempts counted from zero.
   * Only failed ones (a message sent, dropped or still queued is left as it is); returns the
   * rows requeued, with the attempts they had.
   */
  async requeueFailed(trx: Transaction<Tables>, ids: readonly string[], now: string): Promise<Array<{ id: string; topic: string; subject_id: string | null; purpose: string | null }>> {
    if (ids.length === 0) return [];
    return trx
      .updateTable('comms_outbox')
      .set({ status: 'queued', attempts: 0, next_attempt_at: now, claim_token: null, claimed_until: null, updated_at: now })
      .where('id', 'in', [...ids])
      .where('status', '=', 'failed')
      .returning(['id', 'topic', 'subject_id', 'purpose'])
      .execute();
  },

  /** Ids of failed messages, in id order, after `after`: `pledge outbox retry --all-failed` pages through them. */
  failedIds: async (executor: Executor, after: string, limit: number) =>
    (await executor.selectFrom('comms_outbox').select('id').where('status', '=', 'failed').where('id', '>', after).orderBy('id').limit(limit).execute()).map((row) => row.id),

  // --- master key rotation (sealed values are `<kek id>.<wrapped>`; sent and dropped messages have theirs cleared)

  /**
   * The next `limit` messages after `after` (in id order) with an address or data sealed under
   * another KEK than `kekId`. PostgreSQL: they stay locked until the transaction ends, and a
   * message another transaction holds (a claim, a delivery being recorded) is skipped — taken
   * up by the next walk — so a rotation never waits while it holds rows others may wait for.
   */
  sealedUnderAnotherKek(trx: Transaction<Tables>, dialect: DialectName, kekId: string, after: string, limit: number) {
    const query = trx
      .selectFrom('comms_outbox')
      .select(['id', 'to_sealed', 'data_sealed'])
      .where('id', '>', after)
      .where(underAnotherKek(kekId))
      .orderBy('id')
      .limit(limit);
    return (dialect === 'postgres' ? query.forUpdate().skipLocked() : query).execute();
  },

  /**
   * Replaces a message's sealed values on condition that they are still the ones read: when a
   * delivery or a drop cleared them meanwhile, that change stands. Returns whether it replaced.
   */
  async replaceSealed(executor: Executor, id: string, read: { to_sealed: string | null; data_sealed: string }, sealed: { to_sealed: string | null; data_sealed: string }): Promise<boolean> {
    const result = await executor
      .updateTable('comms_outbox')
      .set(sealed)
      .where('id', '=', id)
      .where('data_sealed', '=', read.data_sealed)
      .where((eb) => (read.to_sealed === null ? eb('to_sealed', 'is', null) : eb('to_sealed', '=', read.to_sealed)))
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  },

  /** Messages with a value sealed under another KEK than `kekId`, counted by the KEKs of their address and data ('' / null: none). */
  async countSealedByKek(executor: Executor, kekId: string): Promise<Array<{ toKek: string | null; dataKek: string; count: number }>> {
    const toKek = sql<string | null>`substr(to_sealed, 1, ${sql.lit(kekId.length)})`;
    const dataKek = sql<string>`substr(data_sealed, 1, ${sql.lit(kekId.length)})`;
    const rows = await executor
      .selectFrom('comms_outbox')
      .select([toKek.as('to_kek'), dataKek.as('data_kek'), (eb) => eb.fn.countAll<number | string>().as('count')])
      .where(underAnotherKek(kekId))
      .groupBy([toKek, dataKek])
      .execute();
    return rows.map((row) => ({ toKek: row.to_kek, dataKek: row.data_kek, count: Number(row.count) }));
  },

  async unsubscribedTopics(executor: Executor, subjectIds: readonly string[]): Promise<Set<string>> {
    if (subjectIds.length === 0) return new Set();
    const rows = await executor.selectFrom('comms_topic_states').select(['subject_id', 'topic']).where('subject_id', 'in', [...subjectIds]).where('state', '=', 'unsubscribed').execute();
    return new Set(rows.map((row) => `${row.subject_id}\u0000${row.topic}`));
  },

  async suppressed(executor: Executor, blindIndexes: readonly string[]): Promise<Set<string>> {
    if (blindIndexes.length === 0) return new Set();
    const rows = await executor.selectFrom('comms_suppressions').select(['blind_index', 'topic']).where('blind_index', 'in', [...new Set(blindIndexes)]).execute();
    return new Set(rows.map((row) => `${row.blind_index}\u0000${row.topic}`));
  },

  /**
   * Inserts the opt-out rows; returns whether anything was new (a replay adds nothing). After an
   * opt-in (state `subscribed`), only the link of a message created after it unsubscribes again:
   * an older link, a replayed one included, stands for the wish the opt-in replaced.
   */
  async addOptOut(trx: Transaction<Tables>, input: { subjectId: string; topic: string; blindIndex: string | undefined; messageId: string; messageCreatedAt: string; source: string; now: string }): Promise<boolean> {
    const state = await trx
      .insertInto('comms_topic_states')
      .values({ subject_id: input.subjectId, topic: input.topic, state: 'unsubscribed', message_id: input.messageId, updated_at: input.now })
      .onConflict((conflict) =>
        conflict
          .columns(['subject_id', 'topic'])
          .doUpdateSet({ state: 'unsubscribed', message_id: input.messageId, updated_at: input.now })
          .where('comms_topic_states.state', '=', 'subscribed')
          .where('comms_topic_states.updated_at', '<=', input.messageCreatedAt),
      )
      .returning('subject_id')
      .execute();
    if (state.length === 0) {
      const current = await trx.selectFrom('comms_topic_states').select('state').where('subject_id', '=', input.subjectId).where('topic', '=', input.topic).executeTakeFirst();
      if (current?.state !== 'unsubscribed') return false;
    }
    let suppressed: unknown[] = [];
    if (input.blindIndex) {
      suppressed = await trx
        .insertInto('comms_suppressions')
        .values({ blind_index: input.blindIndex, topic: input.topic, source: input.source, created_at: input.now })
        .onConflict((conflict) => conflict.columns(['blind_index', 'topic']).doNothing())
        .returning('blind_index')
        .execute();
    }
    return state.length > 0 || suppressed.length > 0;
  },

  /**
   * Undoes an unsubscribe after an explicit opt-in: the topic state becomes `subscribed` (kept,
   * see addOptOut) and the address's suppression for the topic goes. Returns whether anything
   * was lifted.
   */
  async liftOptOut(trx: Transaction<Tables>, input: { subjectId: string; topic: string; blindIndex: string | undefined; now: string }): Promise<boolean> {
    const state = await trx
      .updateTable('comms_topic_states')
      .set({ state: 'subscribed', updated_at: input.now })
      .where('subject_id', '=', input.subjectId)
      .where('topic', '=', input.topic)
      .where('state', '=', 'unsubscribed')
      .executeTakeFirst();
    let suppression = 0n;
    if (input.blindIndex) {
      const deleted = await trx.deleteFrom('comms_suppressions').where('blind_index', '=', input.blindIndex).where('topic', '=', input.topic).executeTakeFirst();
      suppression = deleted.numDeletedRows;
    }
    return Number(state.numUpdatedRows) > 0 || suppression > 0n;
  },

  /** Marketing of this topic still waiting for this subject: dropped with the opt-out. */
  async dropQueuedMarketing(trx: Transaction<Tables>, subjectId: string, topic: string, now: string): Promise<number> {
    const result = await trx
      .updateTable('comms_outbox')
      .set({ status: 'dropped', last_error: 'unsubscribed', to_sealed: null, data_sealed: '', updated_at: now })
      .where('subject_id', '=', subjectId)
      .where('topic', '=', topic)
      .where('kind', '=', 'marketing')
      .where('status', '=', 'queued')
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  },

  async topicStates(executor: Executor, subjectId: string) {
    return executor.selectFrom('comms_topic_states').select(['topic', 'state', 'updated_at']).where('subject_id', '=', subjectId).orderBy('topic').execute();
  },

  async isSuppressed(executor: Executor, blindIndex: string, topic: string): Promise<boolean> {
    const row = await executor.selectFrom('comms_suppressions').select('topic').where('blind_index', '=', blindIndex).where('topic', 'in', [topic, '*']).executeTakeFirst();
    return row !== undefined;
  },

  // --- notice runs

  async createRun(executor: Executor, row: CommsNoticeRunsTable): Promise<void> {
    await executor.insertInto('comms_notice_runs').values(row).onConflict((conflict) => conflict.column('policy_version_id').doNothing()).execute();
  },

  /**
   * The oldest unfinished run, locked for this transaction. On SQLite the transaction first
   * writes (takes the writer lock) so that it never has to upgrade a read lock under contention.
   */
  async lockRunningRun(trx: Transaction<Tables>, dialect: DialectName): Promise<CommsNoticeRunsTable | undefined> {
    if (dialect === 'sqlite') {
      await trx.updateTable('comms_notice_runs').set({ status: 'running' }).where('status', '=', 'running').execute();
      return trx.selectFrom('comms_notice_runs').selectAll().where('status', '=', 'running').orderBy('created_at').limit(1).executeTakeFirst();
    }
    return trx.selectFrom('comms_notice_runs').selectAll().where('status', '=', 'running').orderBy('created_at').limit(1).forUpdate().skipLocked().executeTakeFirst();
  },

  async advanceRun(trx: Transaction<Tables>, versionId: string, change: { cursor: string; added: number; done: boolean; now: string }): Promise<void> {
    await trx
      .updateTable('comms_notice_runs')
      .set({ cursor: change.cursor, queued: sql<number>`queued + ${change.added}`, status: change.done ? 'done' : 'running', finished_at: change.done ? change.now : null })
      .where('policy_version_id', '=', versionId)
      .execute();
  },

  getRun: (executor: Executor, versionId: string) => executor.selectFrom('comms_notice_runs').selectAll().where('policy_version_id', '=', versionId).executeTakeFirst(),

  // --- acceptances

  async accept(trx: Transaction<Tables>, row: { subject_id: string; policy_version_id: string; method: string; accepted_at: string }): Promise<boolean> {
    const inserted = await trx.insertInto('policy_acceptances').values(row).onConflict((conflict) => conflict.columns(['subject_id', 'policy_version_id']).doNothing()).returning('subject_id').execute();
    return inserted.length > 0;
  },

  acceptance: (executor: Executor, subjectId: string, versionId: string) =>
    executor.selectFrom('policy_acceptances').selectAll().where('subject_id', '=', subjectId).where('policy_version_id', '=', versionId).executeTakeFirst(),
};
