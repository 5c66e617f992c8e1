import type { AuditTables } from '../audit/audit.tables.js';
import type { ConsentTables } from '../consent/consent.tables.js';
import type { CommsTables } from '../comms/comms.tables.js';
import type { PolicyTables } from '../policy/policy.tables.js';
import type { RetentionTables } from '../retention/retention.tables.js';
import type { StaffTables } from '../staff/staff.tables.js';
import type { SubjectTables } from '../subjects/subjects.tables.js';
import type { KeyringTables } from './keyring.tables.js';
import type { JobTables } from './jobs.js';
import type { RequestTables } from '../requests/requests.tables.js';

/**
 * Row types of every table, for Kysely's type checking. Each domain describes its own tables
 * in `<domain>.tables.ts`, and its store is the only code that reads or writes them.
 *
 * Conventions on every database:
 * - timestamps are ISO 8601 UTC strings (`2026-01-15T10:00:00.000Z`): they sort as text and
 *   mean the same on SQLite and PostgreSQL;
 * - binary values (ciphertexts, hashes, wrapped keys) are base64url text, so one schema
 *   serves both databases and rows stay readable in a console;
 * - booleans are integers 0/1.
 */
export interface Tables extends PolicyTables, KeyringTables, SubjectTables, AuditTables, StaffTables, ConsentTables, CommsTables, JobTables, RequestTables, RetentionTables {}
