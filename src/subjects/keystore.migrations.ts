import type { Kysely, Migration } from 'kysely';

/** Migrations of the key store (its own database; see subjects.tables.ts). */
export const KEYSTORE_MIGRATIONS: Record<string, Migration> = {
  '0001-subject-keys': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('subject_keys')
        .addColumn('subject_id', 'text', (column) => column.primaryKey())
        .addColumn('kek_id', 'text', (column) => column.notNull())
        .addColumn('wrapped', 'text', (column) => column.notNull())
        .addColumn('created_at', 'text', (column) => column.notNull())
        .execute();
      // Rotation walks the keys still wrapped by an old key-encryption key.
      await db.schema.createIndex('subject_keys_kek').on('subject_keys').columns(['kek_id', 'subject_id']).execute();
    },
  },
};
