import { SqliteAdapter, sql, type Kysely } from 'kysely';

/**
 * PostgreSQL: every change to the consent projection NOTIFYs `pledge_consent_state.<schema>`
 * (the schema of the table: instances in two schemas of one database do not hear each other)
 * with the holders whose state moved, separated by spaces ('*' after a TRUNCATE), whoever made
 * it — Pledge's group commit, a merge, an erasure, or someone's SQL. Each process's memory of
 * recent states forgets those holders when it hears of them (consent.cache.ts), and answers from
 * memory only behind a fence on the listening connection.
 *
 * One notification per statement, not per row (a group commit moves dozens of rows in one
 * statement; a trigger call and a notification per row cost its writes several per cent), split
 * in parts of 200 holders to stay well under NOTIFY's 8000-byte payload. SQLite needs none of
 * it: its reads are cheaper than any memory check.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  if (db.getExecutor().adapter instanceof SqliteAdapter) return;
  await sql`create or replace function pledge_consent_state_changed() returns trigger language plpgsql as $$
declare
  channel text := 'pledge_consent_state.' || tg_table_schema;
  part text;
begin
  if tg_op = 'TRUNCATE' then
    perform pg_notify(channel, '*');
  elsif tg_op = 'INSERT' then
    for part in select string_agg(holder, ' ') from (select holder, (row_number() over () - 1) / 200 as n from (select distinct holder from new_rows) h) p group by n loop
      perform pg_notify(channel, part);
    end loop;
  elsif tg_op = 'UPDATE' then
    for part in select string_agg(holder, ' ') from (select holder, (row_number() over () - 1) / 200 as n from (select holder from new_rows union select holder from old_rows) h) p group by n loop
      perform pg_notify(channel, part);
    end loop;
  else
    for part in select string_agg(holder, ' ') from (select holder, (row_number() over () - 1) / 200 as n from (select distinct holder from old_rows) h) p group by n loop
      perform pg_notify(channel, part);
    end loop;
  end if;
  return null;
end $$`.execute(db);
  await sql`create trigger consent_state_inserted after insert on consent_state referencing new table as new_rows
    for each statement execute function pledge_consent_state_changed()`.execute(db);
  await sql`create trigger consent_state_updated after update on consent_state referencing old table as old_rows new table as new_rows
    for each statement execute function pledge_consent_state_changed()`.execute(db);
  await sql`create trigger consent_state_deleted after delete on consent_state referencing old table as old_rows
    for each statement execute function pledge_consent_state_changed()`.execute(db);
  await sql`create trigger consent_state_truncated after truncate on consent_state
    for each statement execute function pledge_consent_state_changed()`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  if (db.getExecutor().adapter instanceof SqliteAdapter) return;
  for (const trigger of ['consent_state_truncated', 'consent_state_deleted', 'consent_state_updated', 'consent_state_inserted']) {
    await sql`drop trigger if exists ${sql.id(trigger)} on consent_state`.execute(db);
  }
  await sql`drop function if exists pledge_consent_state_changed()`.execute(db);
}
