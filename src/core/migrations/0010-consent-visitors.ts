import { sql, type Kysely } from 'kysely';

/**
 * Which subject each identified visitor id became. A visitor id is one browser's cookie before
 * sign-in: once identified as a subject it belongs to that person, and identifying it as
 * another subject would hand the first person's choices to someone else. Filled from the
 * merges already in the ledger (a visitor's first merge names its subject).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('consent_visitors')
    .addColumn('visitor', 'text', (column) => column.primaryKey())
    .addColumn('subject_id', 'text', (column) => column.notNull())
    .addColumn('identified_at', 'text', (column) => column.notNull())
    .execute();
  await sql`insert into consent_visitors (visitor, subject_id, identified_at)
    select e.merged_from, e.holder, e.recorded_at
    from consent_events e
    join (select merged_from, min(id) as first_id from consent_events where merged_from is not null group by merged_from) f on e.id = f.first_id`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('consent_visitors').execute();
}
