/**
 * Row types of every table, for Kysely's type checking. Each domain's store is the only code
 * that reads or writes its tables; this file only describes them.
 *
 * Timestamps are ISO 8601 UTC strings (`2026-01-15T10:00:00.000Z`) on every database: they
 * sort correctly as text and mean the same on SQLite and PostgreSQL.
 */
export interface PolicyVersionsTable {
  id: string;
  version: string;
  hash: string;
  effective_date: string;
  /** The validated policy document as canonical JSON. */
  document: string;
  recorded_at: string;
}

export interface Tables {
  policy_versions: PolicyVersionsTable;
}
