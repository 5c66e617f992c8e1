/**
 * Staff accounts, their console sessions and the API keys of company services.
 *
 * Staff emails are stored in clear (lowercased, unique): they belong to the operator's own
 * employees, are needed to sign in and to manage accounts, and are never subjects' data. They
 * are still kept out of logs, errors and audit details (the audit names staff by id).
 * Secrets are never stored: passwords as argon2id PHC strings, session tokens and API keys as
 * their SHA-256 (they are 32 random bytes, so a fast hash is enough).
 */
export interface StaffUsersTable {
  /** stf_… */
  id: string;
  /** Lowercased; unique. */
  email: string;
  name: string;
  /** One of ROLES (src/staff/permissions.ts). */
  role: string;
  /** argon2id PHC string: $argon2id$v=19$m=19456,t=2,p=1$salt$hash */
  password_hash: string;
  /** Consecutive failed sign-ins since the last success or lock. */
  failed_logins: number;
  locked_until: string | null;
  created_at: string;
  updated_at: string;
  last_login_at: string | null;
  disabled_at: string | null;
}

export interface StaffSessionsTable {
  /** hashToken(session token): the token itself exists only in the browser's cookie. */
  id: string;
  staff_id: string;
  created_at: string;
  /** Absolute end (12 hours after sign-in); the idle end is last_seen_at + 30 minutes. */
  expires_at: string;
  last_seen_at: string;
  revoked_at: string | null;
}

export interface ApiKeysTable {
  /** key_… */
  id: string;
  name: string;
  /** The first characters of the key (`pk_AbCdEfGh`), so people can tell keys apart in lists. */
  prefix: string;
  /** hashToken(full key); unique. */
  secret_hash: string;
  /** JSON array of permissions. */
  permissions: string;
  /** JSON: an array of purpose ids, or the string "all". */
  purposes: string;
  /** Id of the actor who created it (stf_…, or `cli`). */
  created_by: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
  expires_at: string | null;
}

export interface StaffTables {
  staff_users: StaffUsersTable;
  staff_sessions: StaffSessionsTable;
  api_keys: ApiKeysTable;
}
