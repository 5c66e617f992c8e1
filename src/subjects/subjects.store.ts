import type { Kysely, Transaction } from 'kysely';
import { compiledOnce } from '../core/db.js';
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

const subjectById = compiledOnce((db: Kysely<Tables>, id: string) => db.selectFrom('subjects').selectAll().where('id', '=', id));

/** The subject's row joined with each of its fields: one round trip for a purpose-checked read. */
const subjectWithFieldsById = compiledOnce((db: Kysely<Tables>, id: string) =>
  db
    .selectFrom('subjects as s')
    .leftJoin('subject_fields as f', 'f.subject_id', 's.id')
    .select([
      's.id',
      's.kinds',
      's.status',
      's.restricted',
      's.created_at',
      's.updated_at',
      's.last_activity_at',
      's.closed_at',
      's.erased_at',
      'f.category',
      'f.value',
      'f.source',
      'f.partner',
      'f.purpose',
      'f.collected_at',
      'f.updated_at as field_updated_at',
    ])
    .where('s.id', '=', id),
);

/** The only code that touches the subjects, subject_identities and subject_fields tables. */
export const subjectsStore = {
  insertSubjects: (executor: Executor, rows: SubjectsTable[]) => insertChunked(executor, 'subjects', rows, 9),
  insertIdentities: (executor: Executor, rows: SubjectIdentitiesTable[]) => insertChunked(executor, 'subject_identities', rows, 5),
  insertFields: (executor: Executor, rows: SubjectFieldsTable[]) => insertChunked(executor, 'subject_fields', rows, 8),

  getSubject: async (executor: Executor, id: string): Promise<SubjectsTable | undefined> => (await subjectById(executor, id))[0],

  /** A subject and all its fields in one query; undefined when no subject has this id. */
  async subjectWithFields(executor: Executor, id: string): Promise<{ subject: SubjectsTable; fields: SubjectFieldsTable[] } | undefined> {
    const rows = await subjectWithFieldsById(executor, id);
    const first = rows[0];
    if (!first) return undefined;
    const subject: SubjectsTable = {
      id: first.id,
      kinds: first.kinds,
      status: first.status,
      restricted: first.restricted,
      created_at: first.created_at,
      updated_at: first.updated_at,
      last_activity_at: first.last_activity_at,
      closed_at: first.closed_at,
      erased_at: first.erased_at,
    };
    const fields: SubjectFieldsTable[] = [];
    for (const row of rows) {
      if (row.category === null) continue; // the left join's row for a subject without fields
      fields.push({
        subject_id: first.id,
        category: row.category,
        value: row.value!,
        source: row.source!,
        partner: row.partner,
        purpose: row.purpose!,
        collected_at: row.collected_at!,
        updated_at: row.field_updated_at!,
      });
    }
    return { subject, fields };
  },

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

  // --- comms

  /** Active subjects with an email identity, by id after `after`. */
  async registeredAfter(executor: Executor, after: string, limit: number): Promise<string[]> {
    const rows = await executor
      .selectFrom('subjects')
      .select('id')
      .where('status', '=', 'active')
      .where('id', '>', after)
      .where((eb) => eb.exists(eb.selectFrom('subject_identities').select('subject_id').whereRef('subject_identities.subject_id', '=', 'subjects.id').where('kind', '=', 'email')))
      .orderBy('id')
      .limit(limit)
      .execute();
    return rows.map((row) => row.id);
  },

  emailBlindIndexesOf(executor: Executor, subjectIds: readonly string[]) {
    if (subjectIds.length === 0) return Promise.resolve([]);
    return executor.selectFrom('subject_identities').select(['subject_id', 'blind_index']).where('kind', '=', 'email').where('subject_id', 'in', [...subjectIds]).execute();
  },

  /** Sealed email identities of subjects not erased. */
  sealedEmailsOf(executor: Executor, subjectIds: readonly string[]) {
    return executor
      .selectFrom('subject_identities')
      .innerJoin('subjects', 'subjects.id', 'subject_identities.subject_id')
      .select(['subject_identities.subject_id', 'subject_identities.value'])
      .where('subject_identities.kind', '=', 'email')
      .where('subjects.status', '!=', 'erased')
      .where('subject_identities.subject_id', 'in', [...subjectIds])
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
