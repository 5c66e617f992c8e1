export type MessageKind = 'service' | 'marketing' | 'policy_change' | 'request_notice';

/**
 * queued → sending (claimed, leased) → sent (accepted by SMTP) | stored (written as .eml, no
 * SMTP configured) | dropped (not allowed at send time, or no address left) | failed (gave up
 * after the last attempt; kept for staff to see).
 */
export type MessageStatus = 'queued' | 'sending' | 'sent' | 'stored' | 'dropped' | 'failed';

export interface CommsOutboxTable {
  id: string;
  idempotency_key: string;
  kind: MessageKind;
  topic: string;
  purpose: string | null;
  subject_id: string | null;
  /** For a recipient who is not a subject only: the address sealed with the keyring, cleared once sent. */
  to_sealed: string | null;
  template: string;
  /** Template data as JSON, sealed with the keyring (it may hold personal data such as a code); emptied once delivered or dropped. */
  data_sealed: string;
  policy_version_id: string | null;
  status: MessageStatus;
  attempts: number;
  next_attempt_at: string;
  claim_token: string | null;
  claimed_until: string | null;
  /** A code (never a server's message, which may quote the address). */
  last_error: string | null;
  created_at: string;
  updated_at: string;
  sent_at: string | null;
}

/** Keyed by the blind index of the normalised address: the list never holds an address. */
export interface CommsSuppressionsTable {
  blind_index: string;
  topic: string;
  source: string;
  created_at: string;
}

/**
 * A subject's unsubscribe from a topic. `subscribed` once the person opted in again: the row
 * stays, its updated_at the time of the opt-in, so that links in mail sent before it (a
 * replayed token among them) cannot unsubscribe again.
 */
export interface CommsTopicStatesTable {
  subject_id: string;
  topic: string;
  state: 'unsubscribed' | 'subscribed';
  /** The message whose link unsubscribed. */
  message_id: string | null;
  updated_at: string;
}

export interface CommsNoticeRunsTable {
  policy_version_id: string;
  status: 'running' | 'done';
  /** The last subject id queued: the mailing resumes after it. */
  cursor: string;
  queued: number;
  /** JSON template data shared by every notice of the run (no personal data). */
  details: string;
  created_at: string;
  finished_at: string | null;
}

export interface PolicyAcceptancesTable {
  subject_id: string;
  policy_version_id: string;
  method: string;
  accepted_at: string;
}

export interface CommsTables {
  comms_outbox: CommsOutboxTable;
  comms_suppressions: CommsSuppressionsTable;
  comms_topic_states: CommsTopicStatesTable;
  comms_notice_runs: CommsNoticeRunsTable;
  policy_acceptances: PolicyAcceptancesTable;
}
