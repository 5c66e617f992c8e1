import type { RightType } from '../policy/policy.schema.js';

export type RequestStatus = 'identity_unverified' | 'pending' | 'approved' | 'denied' | 'in_progress' | 'completed' | 'failed' | 'canceled';
export type RequestChannel = 'api' | 'privacy_center' | 'email' | 'postal' | 'phone' | 'in_person';
export type VerificationMethod = 'email_code' | 'signed_in' | 'staff_override' | 'not_required';

export interface RequestsTable {
  id: string;
  type: RightType;
  status: RequestStatus;
  channel: RequestChannel;
  /** JSON array of {kind, value}, sealed with the requests key: the person's identities are personal data. */
  identities: string;
  /** JSON array of the identity kinds (no values), for listings. */
  identity_kinds: string;
  /** Sealed JSON of type-specific input (corrections, purposes objected to), or null. */
  details: string | null;
  received_at: string;
  due_at: string;
  extended_due_at: string | null;
  extension_reason: string | null;
  verified_at: string | null;
  verification: VerificationMethod | null;
  /** HMAC of the one-time code, bound to the request id: the code itself is never stored. */
  code_hash: string | null;
  code_expires_at: string | null;
  code_attempts: number;
  code_sends: number;
  decision_reason: string | null;
  /** How many times execution was started (a failed request may be run again). */
  run: number;
  /** JSON summary without personal data (counts, datastores, kept categories). */
  result: string | null;
  failure: string | null;
  reminded_at: string | null;
  created_by: string;
  created_at: string;
  updated_at: string;
  completed_at: string | null;
}

export type TaskState = 'pending' | 'done' | 'failed';

/** One datastore's part of a request. */
export interface RequestTasksTable {
  id: string;
  request_id: string;
  datastore: string;
  state: TaskState;
  attempts: number;
  /** Sealed JSON of what the datastore returned (found rows, changed rows): personal data. */
  output: string | null;
  /** JSON without personal data: counts and categories, shown in the API. */
  summary: string | null;
  last_error: string | null;
  created_at: string;
  updated_at: string;
  completed_at: string | null;
}

/** An access or portability package: sealed content, deleted (content nulled) when it expires. */
export interface RequestPackagesTable {
  id: string;
  request_id: string;
  format: 'json' | 'zip' | 'html';
  content: string | null;
  bytes: number;
  created_at: string;
  expires_at: string;
  deleted_at: string | null;
}

export interface RequestTables {
  requests: RequestsTable;
  request_tasks: RequestTasksTable;
  request_packages: RequestPackagesTable;
}
