import type { Kysely } from 'kysely';

/**
 * Retention of connected-dataset rows by person: the index a sweep finds inactive subjects
 * by (closed accounts already have subjects_status_closed), and what each person's rows were
 * last swept for, so an unchanged person is not walked — nor their identities read — again
 * by every sweep.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createIndex('subjects_last_activity').on('subjects').columns(['last_activity_at', 'id']).execute();
  await db.schema
    .createTable('retention_dataset_people')
    .addColumn('datastore', 'text', (column) => column.notNull())
    .addColumn('subject_id', 'text', (column) => column.notNull())
    .addColumn('state', 'text', (column) => column.notNull())
    .addColumn('swept_at', 'text', (column) => column.notNull())
    .addPrimaryKeyConstraint('retention_dataset_people_pk', ['datastore', 'subject_id'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('retention_dataset_people').execute();
  await db.schema.dropIndex('subjects_last_activity').execute();
}
