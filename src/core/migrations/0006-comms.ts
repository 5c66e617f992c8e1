import type { Kysely } from 'kysely';

/**
 * Comms: the durable outbox, the suppression list and per-topic opt-outs, policy-change
 * mailings (resumable by cursor) and policy acceptances.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('comms_outbox')
    .addColumn('id', 'text', (column) => column.primaryKey())
    // (kind, recipient, topic or version, caller's key): enqueueing twice stores one message.
    .addColumn('idempotency_key', 'text', (column) => column.notNull().unique())
    .addColumn('kind', 'text', (column) => column.notNull())
    .addColumn('topic', 'text', (column) => column.notNull())
    .addColumn('purpose', 'text')
    .addColumn('subject_id', 'text')
    .addColumn('to_sealed', 'text')
    .addColumn('template', 'text', (column) => column.notNull())
    .addColumn('data_sealed', 'text', (column) => column.notNull())
    .addColumn('policy_version_id', 'text')
    .addColumn('status', 'text', (column) => column.notNull())
    .addColumn('attempts', 'integer', (column) => column.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'text', (column) => column.notNull())
    .addColumn('claim_token', 'text')
    .addColumn('claimed_until', 'text')
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'text', (column) => column.notNull())
    .addColumn('updated_at', 'text', (column) => column.notNull())
    .addColumn('sent_at', 'text')
    .execute();
  await db.schema.createIndex('comms_outbox_due').on('comms_outbox').columns(['status', 'next_attempt_at']).execute();
  await db.schema.createIndex('comms_outbox_subject').on('comms_outbox').columns(['subject_id', 'status']).execute();

  await db.schema
    .createTable('comms_suppressions')
    .addColumn('blind_index', 'text', (column) => column.notNull())
    .addColumn('topic', 'text', (column) => column.notNull())
    .addColumn('source', 'text', (column) => column.notNull())
    .addColumn('created_at', 'text', (column) => column.notNull())
    .addPrimaryKeyConstraint('comms_suppressions_pk', ['blind_index', 'topic'])
    .execute();

  await db.schema
    .createTable('comms_topic_states')
    .addColumn('subject_id', 'text', (column) => column.notNull())
    .addColumn('topic', 'text', (column) => column.notNull())
    .addColumn('state', 'text', (column) => column.notNull())
    .addColumn('message_id', 'text')
    .addColumn('updated_at', 'text', (column) => column.notNull())
    .addPrimaryKeyConstraint('comms_topic_states_pk', ['subject_id', 'topic'])
    .execute();

  await db.schema
    .createTable('comms_notice_runs')
    .addColumn('policy_version_id', 'text', (column) => column.primaryKey())
    .addColumn('status', 'text', (column) => column.notNull())
    .addColumn('cursor', 'text', (column) => column.notNull())
    .addColumn('queued', 'integer', (column) => column.notNull().defaultTo(0))
    // What every notice of the run says (version, effective date, material changes): no personal data.
    .addColumn('details', 'text', (column) => column.notNull())
    .addColumn('created_at', 'text', (column) => column.notNull())
    .addColumn('finished_at', 'text')
    .execute();

  await db.schema
    .createTable('policy_acceptances')
    .addColumn('subject_id', 'text', (column) => column.notNull())
    .addColumn('policy_version_id', 'text', (column) => column.notNull())
    .addColumn('method', 'text', (column) => column.notNull())
    .addColumn('accepted_at', 'text', (column) => column.notNull())
    .addPrimaryKeyConstraint('policy_acceptances_pk', ['subject_id', 'policy_version_id'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['policy_acceptances', 'comms_notice_runs', 'comms_topic_states', 'comms_suppressions', 'comms_outbox']) {
    await db.schema.dropTable(table).execute();
  }
}
