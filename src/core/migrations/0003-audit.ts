import { sql, type Kysely } from 'kysely';

/** The audit chain: entries, signed checkpoints and the head row (see src/audit/audit.tables.ts). */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('audit_entries')
    .addColumn('seq', 'integer', (column) => column.primaryKey())
    .addColumn('id', 'text', (column) => column.notNull().unique())
    .addColumn('at', 'text', (column) => column.notNull())
    .addColumn('actor_type', 'text', (column) => column.notNull())
    .addColumn('actor_id', 'text', (column) => column.notNull())
    .addColumn('action', 'text', (column) => column.notNull())
    .addColumn('target_type', 'text')
    .addColumn('target_id', 'text')
    .addColumn('purpose', 'text')
    .addColumn('details', 'text', (column) => column.notNull())
    .addColumn('prev_hash', 'text', (column) => column.notNull())
    .addColumn('hash', 'text', (column) => column.notNull())
    .execute();
  // The listing filters by target or action and pages by seq.
  await db.schema.createIndex('audit_entries_target').on('audit_entries').columns(['target_id', 'seq']).execute();
  await db.schema.createIndex('audit_entries_action').on('audit_entries').columns(['action', 'seq']).execute();

  await db.schema
    .createTable('audit_checkpoints')
    .addColumn('seq', 'integer', (column) => column.primaryKey())
    .addColumn('hash', 'text', (column) => column.notNull())
    .addColumn('signed_at', 'text', (column) => column.notNull())
    .addColumn('key_id', 'text', (column) => column.notNull())
    .addColumn('signature', 'text', (column) => column.notNull())
    .execute();

  await db.schema
    .createTable('audit_head')
    .addColumn('id', 'integer', (column) => column.primaryKey())
    .addColumn('seq', 'integer', (column) => column.notNull())
    .addColumn('hash', 'text', (column) => column.notNull())
    .execute();
  // The genesis hash: 32 zero bytes, base64url (GENESIS_HASH in src/audit/audit.chain.ts).
  await sql`insert into audit_head (id, seq, hash) values (1, 0, ${'A'.repeat(43)})`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('audit_head').execute();
  await db.schema.dropTable('audit_checkpoints').execute();
  await db.schema.dropTable('audit_entries').execute();
}
