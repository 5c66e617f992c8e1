/** What a consent event decides about a purpose, a communication topic or a recipient. */
export type ConsentAction = 'granted' | 'denied' | 'withdrawn' | 'opted_out_by_signal';

/** Where a decision came from; gpc and dnt are browser signals, never sent as a body's source. */
export type ConsentSource = 'banner' | 'privacy_center' | 'api' | 'email_link' | 'gpc' | 'dnt' | 'staff' | 'import';

/**
 * What a choice is about: a purpose (may the company use the data for it), a communication
 * topic (may it mail the person about it), or a recipient declared with `opt_out: true` (may
 * data go to it at all). A column of plain text: a new kind needs no migration.
 */
export type ConsentTargetKind = 'purpose' | 'topic' | 'recipient';

/**
 * The ledger: append-only, one row per decision. A holder is a subject (sub_…) or an anonymous
 * visitor (vis_…). Evidence is kept without personal data: a country code from the operator's
 * proxy, the browser family, the banner version — never an address or a full user agent.
 */
export interface ConsentEventsTable {
  id: string;
  holder: string;
  target_kind: ConsentTargetKind;
  /** A purpose id, a communication topic id or a recipient id of the policy. */
  target: string;
  action: ConsentAction;
  source: ConsentSource;
  policy_version: string;
  country: string | null;
  ua_family: string | null;
  banner_version: string | null;
  /** On events copied from a visitor when it identified: the visitor id. */
  merged_from: string | null;
  /** When the person decided (for merged events, when the visitor did). */
  decided_at: string;
  receipt_id: string;
  recorded_at: string;
}

/** The projection of the ledger: the latest decision per (holder, target), read by primary key. */
export interface ConsentStateTable {
  holder: string;
  target_kind: ConsentTargetKind;
  target: string;
  action: ConsentAction;
  source: ConsentSource;
  policy_version: string;
  event_id: string;
  decided_at: string;
}

/** Signals already applied to a holder's purpose: each is applied once, so a later opt-in stands. */
export interface ConsentSignalsTable {
  holder: string;
  signal: 'gpc' | 'dnt';
  purpose: string;
  event_id: string;
  applied_at: string;
}

/** Kantara Consent Receipt v1.1 documents, as issued (JSON). */
export interface ConsentReceiptsTable {
  id: string;
  holder: string;
  issued_at: string;
  body: string;
}

/** The subject an identified visitor id became; a visitor id is identified as one subject only. */
export interface ConsentVisitorsTable {
  visitor: string;
  subject_id: string;
  identified_at: string;
}

export interface ConsentTables {
  consent_events: ConsentEventsTable;
  consent_state: ConsentStateTable;
  consent_signals: ConsentSignalsTable;
  consent_receipts: ConsentReceiptsTable;
  consent_visitors: ConsentVisitorsTable;
}
