import { sql, SqliteAdapter, type Kysely, type SqlBool, type Transaction } from 'kysely';
import { compiledFirst, compiledOnce } from '../core/db.js';
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

const subjectById = compiledFirst((db: Kysely<Tables>, id: string) => db.selectFrom('subjects').selectAll().where('id', '=', id));

/**
 * The subject's row with each field's category and ciphertext — what a purpose-checked read
 * needs when the fields' values are already open in memory (see KeyStore): a field row never
 * changes without a new ciphertext, so the ciphertext says whether the rest is still current.
 * One statement and one row: the fields come as one JSON array ([[category, ciphertext], …])
 * built by the database, which costs less than a join repeating the subject's columns on every
 * field row, or a second statement (on SQLite, a second lock and unlock of the file).
 */
const subjectWithSealsById = compiledFirst((db: Kysely<Tables>, id: string) =>
  db
    .selectFrom('subjects as s')
    .selectAll('s')
    .select(
      (db.getExecutor().adapter instanceof SqliteAdapter
        ? sql<string>`(select json_group_array(json_array(f.category, f.value)) from subject_fields as f where f.subject_id = s.id)`
        : sql<string>`(select coalesce(json_agg(json_build_array(f.category, f.value)), '[]'::json) from subject_fields as f where f.subject_id = s.id)`
      ).as('seals'),
    )
    .where('s.id', '=', id),
);
const fieldsById = compiledOnce((db: Kysely<Tables>, id: string) => db.selectFrom('subject_fields').selectAll().where('subject_id', '=', id));

export interface FieldSeal {
  category: string;
  value: string;
}

/** The only code that touches the subjects, subject_identities and subject_fields tables. */
export const subjectsStore = {
  insertSubjects: (executor: Executor, rows: SubjectsTable[]) => insertChunked(executor, 'subjects', rows, 9),
  insertIdentities: (executor: Executor, rows: SubjectIdentitiesTable[]) => insertChunked(executor, 'subject_identities', rows, 5),
  insertFields: (executor: Executor, rows: SubjectFieldsTable[]) => insertChunked(executor, 'subject_fields', rows, 8),

  getSubject: (executor: Executor, id: string): Promise<SubjectsTable | undefined> => subjectById(executor, id),

  /** A subject with its fields' categories and ciphertexts; undefined when no subject has this id. */
  async subjectWithSeals(executor: Executor, id: string): Promise<{ subject: SubjectsTable; seals: FieldSeal[] } | undefined> {
    const row = await subjectWithSealsById(executor, id);
    if (!row) return undefined;
    const { seals: packed, ...subject } = row;
    // SQLite answers JSON as text; PostgreSQL's driver has already parsed it.
    const pairs = (typeof packed === 'string' ? JSON.parse(packed) : packed) as Array<[string, string]>;
    return { subject, seals: pairs.map(([category, value]) => ({ category, value })) };
  },

  /**
   * SQL selecting (id, status) of the subjects whose id is in `ids` (a text[] expression), for
   * a statement of another domain that must check its subjects in the same statement.
   */
  statusesSql: (ids: string): string => `select id, status from subjects where id = any(${ids})`,

  /** The rows of these subjects that exist (any status). */
  async subjectsByIds(executor: Executor, ids: readonly string[]): Promise<SubjectsTable[]> {
    const rows: SubjectsTable[] = [];
    for (let start = 0; start < ids.length; start += 5000) {
      rows.push(...(await executor.selectFrom('subjects').selectAll().where('id', 'in', ids.slice(start, start + 5000)).execute()));
    }
    return rows;
  },

  /** The status of each of these subjects that exists. */
  async statusesOf(executor: Executor, ids: readonly string[]): Promise<Map<string, string>> {
    const statuses = new Map<string, string>();
    for (let start = 0; start < ids.length; start += 5000) {
      const rows = await executor.selectFrom('subjects').select(['id', 'status']).where('id', 'in', ids.slice(start, start + 5000)).execute();
      for (const row of rows) statuses.set(row.id, row.status);
    }
    return statuses;
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

  fieldsOf: (executor: Executor, subjectId: string): Promise<SubjectFieldsTable[]> => fieldsById(executor, subjectId),

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
  eraseSubject(executor: Executor, id: string, now: string): Promise<void> {
    return subjectsStore.eraseSubjects(executor, [id], now);
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

  // --- retention -----------------------------------------------------------------------------

  /** Categories stored in the vault (one walk of the retention index). */
  storedCategories: async (executor: Executor) => (await executor.selectFrom('subject_fields').select('category').distinct().execute()).map((row) => row.category),

  countExpiredFields: async (executor: Executor, query: FieldRetentionQuery): Promise<number> => {
    if (query.onlySubjects?.length === 0) return 0;
    const row = await expiredFields(executor, query).select((eb) => eb.fn.countAll<string | number>().as('count')).executeTakeFirst();
    return Number(row?.count ?? 0);
  },

  /**
   * Deletes up to `limit` fields past retention in one statement (DELETE … WHERE subject_id IN
   * (SELECT … LIMIT n)); with `returning`, gives back what an anonymised count needs.
   */
  async deleteExpiredFields(
    executor: Executor,
    query: FieldRetentionQuery,
    options: { limit: number; returning: boolean; dialect: 'sqlite' | 'postgres' },
  ): Promise<{ rows: number; removed: Array<{ purpose: string; collected_at: string }> }> {
    // Oldest first, along the retention index: later batches skip what earlier ones removed
    // through the index, never by walking dead rows.
    const batch = expiredFields(executor, query).orderBy('f.updated_at').limit(options.limit);
    const statement =
      options.dialect === 'postgres'
        ? // By physical row address: a TID scan, where a join on the key would scan the table
          // for every batch. A row rewritten by another transaction meanwhile has a new
          // address, so it is left alone.
          executor.deleteFrom('subject_fields').where(sql<SqlBool>`ctid = any(array(${batch.select(sql`f.ctid`.as('ctid'))}))`)
        : // One writer: nothing changes between the subquery and the delete. Only the key in
          // the outer condition, so SQLite probes the primary key rather than scanning the
          // index range again for every batch.
          executor.deleteFrom('subject_fields').where('category', '=', query.category).where('subject_id', 'in', batch.select('f.subject_id'));
    if (options.returning) {
      const removed = await statement.returning(['purpose', 'collected_at']).execute();
      return { rows: removed.length, removed };
    }
    const result = await statement.executeTakeFirst();
    return { rows: Number(result.numDeletedRows), removed: [] };
  },

  /** Closed subjects past `cutoff` with no field left: what remains of them is only their key and identities. */
  closedWithoutFields(executor: Executor, cutoff: string, exceptSubjects: readonly string[], onlySubjects?: readonly string[]) {
    let query = executor
      .selectFrom('subjects as s')
      .where('s.status', '=', 'closed')
      .where('s.closed_at', '<=', cutoff)
      .where((eb) => eb.not(eb.exists(eb.selectFrom('subject_fields as f').select('f.category').whereRef('f.subject_id', '=', 's.id'))));
    if (exceptSubjects.length > 0) query = query.where('s.id', 'not in', exceptSubjects);
    if (onlySubjects) query = query.where('s.id', 'in', onlySubjects);
    return query;
  },

  /** eraseSubject for many subjects at once (their keys are already destroyed). */
  async eraseSubjects(executor: Executor, ids: readonly string[], now: string): Promise<void> {
    if (ids.length === 0) return;
    await executor.deleteFrom('subject_fields').where('subject_id', 'in', ids).execute();
    await executor.deleteFrom('subject_identities').where('subject_id', 'in', ids).execute();
    await executor
      .updateTable('subjects')
      .set({ status: 'erased', kinds: '[]', restricted: 0, erased_at: now, updated_at: now })
      .where('id', 'in', ids)
      .execute();
  },
};

/**
 * Which fields a retention rule reaches: one category, whose trigger started at or before
 * `cutoff`, of subjects of some kinds, leaving held subjects alone.
 */
export interface FieldRetentionQuery {
  category: string;
  trigger: 'collected' | 'last_activity' | 'account_closed';
  /** ISO time: data whose trigger started at or before it is past retention. */
  cutoff: string;
  /** Only subjects having one of these kinds; undefined: any kind. */
  kinds?: readonly string[] | undefined;
  /** Not subjects having any of these kinds (a more specific rule governs them). */
  exceptKinds?: readonly string[] | undefined;
  /** Subjects left alone (legal holds). */
  exceptSubjects?: readonly string[] | undefined;
  /** Only these subjects (to count what the holds protect). */
  onlySubjects?: readonly string[] | undefined;
}

/** `s.kinds` holds a JSON array of kind ids: a kind is present when its quoted id is. */
function hasKind(kind: string) {
  const pattern = `%"${kind.replace(/[!%_]/g, (character) => `!${character}`)}"%`;
  return sql<SqlBool>`s.kinds like ${pattern} escape '!'`;
}

function expiredFields(executor: Executor, query: FieldRetentionQuery) {
  let select = executor.selectFrom('subject_fields as f').where('f.category', '=', query.category);
  if (query.trigger === 'collected') select = select.where('f.updated_at', '<=', query.cutoff);
  if (query.exceptSubjects && query.exceptSubjects.length > 0) select = select.where('f.subject_id', 'not in', query.exceptSubjects);
  if (query.onlySubjects) select = select.where('f.subject_id', 'in', query.onlySubjects);
  const { kinds, exceptKinds = [], trigger, cutoff } = query;
  // The subject row is read only when the rule needs it: the common case (collected, any
  // kind) stays on the retention index alone.
  if (trigger !== 'collected' || kinds || exceptKinds.length > 0) {
    select = select.where((eb) =>
      eb.exists(
        eb
          .selectFrom('subjects as s')
          .select('s.id')
          .whereRef('s.id', '=', 'f.subject_id')
          .$if(trigger === 'last_activity', (sub) => sub.where('s.last_activity_at', '<=', cutoff))
          .$if(trigger === 'account_closed', (sub) => sub.where('s.status', '=', 'closed').where('s.closed_at', '<=', cutoff))
          .$if(kinds !== undefined, (sub) => sub.where((inner) => inner.or(kinds!.map(hasKind))))
          .$if(exceptKinds.length > 0, (sub) => sub.where((inner) => inner.not(inner.or(exceptKinds.map(hasKind))))),
      ),
    );
  }
  return select;
}
