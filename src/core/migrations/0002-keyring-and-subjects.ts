import { SqliteAdapter, sql, type Kysely } from 'kysely';

/**
 * The subject tables are clustered on their natural keys (WITHOUT ROWID on SQLite): a
 * subject's fields and an identity's blind index are then one B-tree each, which halves the
 * index work of bulk imports.
 */
function clustered(db: Kysely<unknown>) {
  return db.getExecutor().adapter instanceof SqliteAdapter ? sql`without rowid` : sql``;
}

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('keyring')
    .addColumn('name', 'text', (column) => column.primaryKey())
    .addColumn('kek_id', 'text', (column) => column.notNull())
    .addColumn('wrapped', 'text', (column) => column.notNull())
    .addColumn('created_at', 'text', (column) => column.notNull())
    .execute();

  await db.schema
    .createTable('subjects')
    .addColumn('id', 'text', (column) => column.primaryKey())
    .addColumn('kinds', 'text', (column) => column.notNull())
    .addColumn('status', 'text', (column) => column.notNull())
    .addColumn('restricted', 'integer', (column) => column.notNull().defaultTo(0))
    .addColumn('created_at', 'text', (column) => column.notNull())
    .addColumn('updated_at', 'text', (column) => column.notNull())
    .addColumn('last_activity_at', 'text', (column) => column.notNull())
    .addColumn('closed_at', 'text')
    .addColumn('erased_at', 'text')
    .modifyEnd(clustered(db))
    .execute();
  await db.schema.createIndex('subjects_status_closed').on('subjects').columns(['status', 'closed_at']).execute();

  await db.schema
    .createTable('subject_identities')
    .addColumn('kind', 'text', (column) => column.notNull())
    .addColumn('blind_index', 'text', (column) => column.notNull())
    .addColumn('subject_id', 'text', (column) => column.notNull().references('subjects.id').onDelete('cascade'))
    .addColumn('value', 'text', (column) => column.notNull())
    .addColumn('created_at', 'text', (column) => column.notNull())
    .addPrimaryKeyConstraint('subject_identities_pk', ['kind', 'blind_index'])
    .modifyEnd(clustered(db))
    .execute();
  await db.schema.createIndex('subject_identities_subject').on('subject_identities').column('subject_id').execute();

  await db.schema
    .createTable('subject_fields')
    .addColumn('subject_id', 'text', (column) => column.notNull().references('subjects.id').onDelete('cascade'))
    .addColumn('category', 'text', (column) => column.notNull())
    .addColumn('value', 'text', (column) => column.notNull())
    .addColumn('source', 'text', (column) => column.notNull())
    .addColumn('partner', 'text')
    .addColumn('purpose', 'text', (column) => column.notNull())
    .addColumn('collected_at', 'text', (column) => column.notNull())
    .addColumn('updated_at', 'text', (column) => column.notNull())
    .addPrimaryKeyConstraint('subject_fields_pk', ['subject_id', 'category'])
    .modifyEnd(clustered(db))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['subject_fields', 'subject_identities', 'subjects', 'keyring']) {
    await db.schema.dropTable(table).execute();
  }
}
