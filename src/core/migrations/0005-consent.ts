import type { Kysely } from 'kysely';

/** The consent ledger, its projection, applied signals and receipts (see src/consent/consent.tables.ts). */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('consent_events')
    .addColumn('id', 'text', (column) => column.primaryKey())
    .addColumn('holder', 'text', (column) => column.notNull())
    .addColumn('target_kind', 'text', (column) => column.notNull())
    .addColumn('target', 'text', (column) => column.notNull())
    .addColumn('action', 'text', (column) => column.notNull())
    .addColumn('source', 'text', (column) => column.notNull())
    .addColumn('policy_version', 'text', (column) => column.notNull())
    .addColumn('country', 'text')
    .addColumn('ua_family', 'text')
    .addColumn('banner_version', 'text')
    .addColumn('merged_from', 'text')
    .addColumn('decided_at', 'text', (column) => column.notNull())
    .addColumn('receipt_id', 'text', (column) => column.notNull())
    .addColumn('recorded_at', 'text', (column) => column.notNull())
    .execute();
  // A holder's history, in order (ids sort by time).
  await db.schema.createIndex('consent_events_holder').on('consent_events').columns(['holder', 'id']).execute();

  await db.schema
    .createTable('consent_state')
    .addColumn('holder', 'text', (column) => column.notNull())
    .addColumn('target_kind', 'text', (column) => column.notNull())
    .addColumn('target', 'text', (column) => column.notNull())
    .addColumn('action', 'text', (column) => column.notNull())
    .addColumn('source', 'text', (column) => column.notNull())
    .addColumn('policy_version', 'text', (column) => column.notNull())
    .addColumn('event_id', 'text', (column) => column.notNull())
    .addColumn('decided_at', 'text', (column) => column.notNull())
    .addPrimaryKeyConstraint('consent_state_pk', ['holder', 'target_kind', 'target'])
    .execute();

  await db.schema
    .createTable('consent_signals')
    .addColumn('holder', 'text', (column) => column.notNull())
    .addColumn('signal', 'text', (column) => column.notNull())
    .addColumn('purpose', 'text', (column) => column.notNull())
    .addColumn('event_id', 'text', (column) => column.notNull())
    .addColumn('applied_at', 'text', (column) => column.notNull())
    .addPrimaryKeyConstraint('consent_signals_pk', ['holder', 'signal', 'purpose'])
    .execute();

  await db.schema
    .createTable('consent_receipts')
    .addColumn('id', 'text', (column) => column.primaryKey())
    .addColumn('holder', 'text', (column) => column.notNull())
    .addColumn('issued_at', 'text', (column) => column.notNull())
    .addColumn('body', 'text', (column) => column.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('consent_receipts').execute();
  await db.schema.dropTable('consent_signals').execute();
  await db.schema.dropTable('consent_state').execute();
  await db.schema.dropTable('consent_events').execute();
}
