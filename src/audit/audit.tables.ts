/**
 * The audit chain's tables (migration 0003-audit).
 *
 * Sequence numbers are `integer` on both databases, not `bigint`: node-postgres returns
 * `bigint` as a string, `integer` as a number, so `integer` is what round-trips as a JS number
 * on SQLite and PostgreSQL alike without a global type parser. Its ceiling, 2^31 − 1 entries,
 * is 68 years at a sustained 1,000 entries per second; a chain that ever nears it moves to
 * `bigint` with a migration and a `Number()` in the store.
 */
export interface AuditEntriesTable {
  /** Position in the chain: 1, 2, 3… with no gaps. */
  seq: number;
  /** `aud_…`, for references from elsewhere (an API response, a support ticket). */
  id: string;
  at: string;
  actor_type: string;
  actor_id: string;
  /** What happened, as a code: `data.read`, `subject.erase`, `staff.login`… */
  action: string;
  target_type: string | null;
  target_id: string | null;
  purpose: string | null;
  /** Canonical JSON (sorted keys) of ids, codes and counts — never personal data. `{}` when none. */
  details: string;
  /** `hash` of entry seq − 1; for entry 1 the genesis value (32 zero bytes). */
  prev_hash: string;
  /** SHA-256 of the entry's serialisation (see audit.chain.ts), base64url. */
  hash: string;
}

/** A signed statement "the chain up to `seq` ends in `hash`". */
export interface AuditCheckpointsTable {
  /** The seq of the entry it covers. */
  seq: number;
  hash: string;
  signed_at: string;
  /** Short id of the Ed25519 public key that signed it. */
  key_id: string;
  /** Ed25519 signature of `pledge-audit-checkpoint:v1:<seq>:<hash>`, base64url. */
  signature: string;
}

/**
 * One row (id = 1): the last seq and hash. Every append updates it first, which makes it the
 * chain's lock — a row lock on PostgreSQL, the write lock on SQLite — and lets verification
 * notice a truncated tail.
 */
export interface AuditHeadTable {
  id: number;
  seq: number;
  hash: string;
}

export interface AuditTables {
  audit_entries: AuditEntriesTable;
  audit_checkpoints: AuditCheckpointsTable;
  audit_head: AuditHeadTable;
}
