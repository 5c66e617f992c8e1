import { SqliteAdapter, sql, type Kysely } from 'kysely';

/**
 * PostgreSQL: every change to the consent projection NOTIFYs `pledge_consent_state.<schema>`
 * (the schema of the table: instances in two schemas of one database do not hear each other)
 * with the holder whose state moved (a TRUNCATE with '*'), whoever made it — Pledge's group commit, a
 * merge, an erasure, or someone's SQL. Each process's memory of recent states forgets the holder
 * when it hears of it (consent.cache.ts), and answers from memory only behind a fence on the
 * listening connection. Identical notifications of one transaction reach listeners once.
 * SQLite needs none of it: its reads are cheaper than any memory check.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  if (db.getExecutor().adapter instanceof SqliteAdapter) return;
  await sql`create or replace function pledge_consent_state_changed() returns trigger language plpgsql as $$
begin
  if tg_op = 'TRUNCATE' then
    perform pg_notify('pledge_consent_state.' || tg_table_schema, '*');
    return null;
  end if;
  if tg_op <> 'INSERT' then perform pg_notify('pledge_consent_state.' || tg_table_schema, old.holder); end if;
  if tg_op <> 'DELETE' then perform pg_notify('pledge_consent_state.' || tg_table_schema, new.holder); end if;
  return null;
end $$`.execute(db);
  await sql`create trigger consent_state_changed after insert or update or delete on consent_state
    for each row execute function pledge_consent_state_changed()`.execute(db);
  await sql`create trigger consent_state_truncated after truncate on consent_state
    for each statement execute function pledge_consent_state_changed()`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  if (db.getExecutor().adapter instanceof SqliteAdapter) return;
  await sql`drop trigger if exists consent_state_truncated on consent_state`.execute(db);
  await sql`drop trigger if exists consent_state_changed on consent_state`.execute(db);
  await sql`drop function if exists pledge_consent_state_changed()`.execute(db);
}
