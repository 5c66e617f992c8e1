import { sql, type Kysely } from 'kysely';

/** Legal holds, anonymised counts, the sweep lease, and the index sweeps search fields by. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('retention_holds')
    .addColumn('id', 'text', (column) => column.primaryKey())
    .addColumn('subject_id', 'text', (column) => column.notNull())
    .addColumn('reason', 'text', (column) => column.notNull())
    .addColumn('placed_by', 'text', (column) => column.notNull())
    .addColumn('placed_at', 'text', (column) => column.notNull())
    .addColumn('expires_at', 'text')
    .addColumn('released_at', 'text')
    .addColumn('released_by', 'text')
    .execute();
  await db.schema.createIndex('retention_holds_subject').on('retention_holds').columns(['subject_id']).execute();

  await db.schema
    .createTable('retention_aggregates')
    .addColumn('category', 'text', (column) => column.notNull())
    .addColumn('purpose', 'text', (column) => column.notNull())
    .addColumn('period', 'text', (column) => column.notNull())
    .addColumn('rows', 'integer', (column) => column.notNull())
    .addPrimaryKeyConstraint('retention_aggregates_pk', ['category', 'purpose', 'period'])
    .execute();

  await db.schema
    .createTable('retention_leases')
    .addColumn('name', 'text', (column) => column.primaryKey())
    .addColumn('holder', 'text')
    .addColumn('expires_at', 'text')
    .execute();
  await sql`insert into retention_leases (name, holder, expires_at) values ('sweep', null, null)`.execute(db);

  // A sweep asks "fields of this category last written before this time": without this index
  // every batch would scan the whole table.
  await db.schema.createIndex('subject_fields_retention').on('subject_fields').columns(['category', 'updated_at']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('subject_fields_retention').execute();
  await db.schema.dropTable('retention_leases').execute();
  await db.schema.dropTable('retention_aggregates').execute();
  await db.schema.dropTable('retention_holds').execute();
}
