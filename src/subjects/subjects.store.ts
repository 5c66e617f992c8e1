import type { Kysely, Transaction } from 'kysely';
import type { Tables } from '../core/db.tables.js';
import type { SubjectFieldsTable, SubjectIdentitiesTable, SubjectsTable } from './subjects.tables.js';

type Executor = Kysely<Tables> | Transaction<Tables>;

/** Inserts rows in chunks that stay under every database's bound-parameter limit. */
async function insertChunked<K extends 'subjects' | 'subject_identities' | 'subject_fields'>(
  executor: Executor,
  table: K,
  rows: Array<Tables[K]>,
  columns: number,
): Promise<void> {
  const size = Math.floor(4000 / columns);
  for (let start = 0; start < rows.length; start += size) {
    // Kysely's insert typing is per table; the rows match the table's columns.
    await executor.insertInto(table).values(rows.slice(start, start + size) as never).execute();
  }
}

/** The only code that touches the subjects, subject_identities and subject_fields tables. */
export const subjectsStore = {
  insertSubjects: (executor: Executor, rows: SubjectsTable[]) => insertChunked(executor, 'subjects', rows, 9),
  insertIdentities: (executor: Executor, rows: SubjectIdentitiesTable[]) => insertChunked(executor, 'subject_identities', rows, 5),
  insertFields: (executor: Executor, rows: SubjectFieldsTable[]) => insertChunked(executor, 'subject_fields', rows, 8),

  getSubject: (executor: Executor, id: string) => executor.selectFrom('subjects').selectAll().where('id', '=', id).executeTakeFirst(),

  /** Subjects holding any of these identities (kind + blind index), for conflict checks and look-ups. */
  async findByIdentities(executor: Executor, kind: SubjectIdentitiesTable['kind'], blindIndexes: readonly string[]) {
    if (blindIndexes.length === 0) return [];
    const found: Array<{ subject_id: string; blind_index: string }> = [];
    for (let start = 0; start < blindIndexes.length; start += 5000) {
      found.push(
        ...(await executor
          .selectFrom('subject_identities')
          .select(['subject_id', 'blind_index'])
          .where('kind', '=', kind)
          .where('blind_index', 'in', blindIndexes.slice(start, start + 5000))
          .execute()),
      );
    }
    return found;
  },

  identitiesOf: (executor: Executor, subjectId: string) =>
    executor.selectFrom('subject_identities').select(['kind', 'value', 'created_at']).where('subject_id', '=', subjectId).orderBy('created_at').execute(),

  fieldsOf: (executor: Executor, subjectId: string) => executor.selectFrom('subject_fields').selectAll().where('subject_id', '=', subjectId).execute(),

  async upsertField(executor: Executor, row: SubjectFieldsTable): Promise<void> {
    await executor
      .insertInto('subject_fields')
      .values(row)
      .onConflict((conflict) =>
        conflict.columns(['subject_id', 'category']).doUpdateSet({
          value: row.value,
          source: row.source,
          partner: row.partner,
          purpose: row.purpose,
          updated_at: row.updated_at,
        }),
      )
      .execute();
  },

  async updateSubject(executor: Executor, id: string, changes: Partial<Omit<SubjectsTable, 'id'>>): Promise<void> {
    await executor.updateTable('subjects').set(changes).where('id', '=', id).execute();
  },

  /** Removes every ciphertext of a subject (its key is already destroyed) and keeps a tombstone. */
  async eraseSubject(executor: Executor, id: string, now: string): Promise<void> {
    await executor.deleteFrom('subject_fields').where('subject_id', '=', id).execute();
    await executor.deleteFrom('subject_identities').where('subject_id', '=', id).execute();
    await executor
      .updateTable('subjects')
      .set({ status: 'erased', kinds: '[]', restricted: 0, erased_at: now, updated_at: now })
      .where('id', '=', id)
      .execute();
  },

  // requests: partial erasure, when a legal exception keeps some fields.
  async deleteFields(executor: Executor, id: string, categories: readonly string[]): Promise<void> {
    if (categories.length === 0) return;
    await executor.deleteFrom('subject_fields').where('subject_id', '=', id).where('category', 'in', categories).execute();
  },

  async deleteIdentities(executor: Executor, id: string): Promise<void> {
    await executor.deleteFrom('subject_identities').where('subject_id', '=', id).execute();
  },
};
