/** A legal hold: while active, retention sweeps and erasure leave the subject untouched. */
export interface RetentionHoldsTable {
  id: string;
  subject_id: string;
  /** Why the data must be kept (a case or matter reference); shown to staff, never logged. */
  reason: string;
  placed_by: string;
  placed_at: string;
  /** The hold lapses by itself at this time; null: until released. */
  expires_at: string | null;
  released_at: string | null;
  released_by: string | null;
}

/**
 * What remains of anonymised vault fields: how many values of a category, collected for a
 * purpose in a month, were removed. Counts only — no subject, no value — so the statistics
 * survive without the people.
 */
export interface RetentionAggregatesTable {
  category: string;
  purpose: string;
  /** YYYY-MM of collection. */
  period: string;
  rows: number;
}

/**
 * One row per lease name ('sweep'): the process holding it runs the sweep; the others skip.
 * A lease that was not renewed in time (a crashed process) may be taken over.
 */
export interface RetentionLeasesTable {
  name: string;
  holder: string | null;
  expires_at: string | null;
}

/**
 * What a person's rows in one datastore were last swept for: a digest of the fields' fates
 * and of the clocks they were measured from. A sweep walks the person again only when the
 * digest changes (a rule's exception ran out, new activity, the policy changed) or the last
 * walk is old enough that rows added since should be looked for.
 */
export interface RetentionDatasetPeopleTable {
  datastore: string;
  subject_id: string;
  state: string;
  swept_at: string;
}

export interface RetentionTables {
  retention_holds: RetentionHoldsTable;
  retention_aggregates: RetentionAggregatesTable;
  retention_leases: RetentionLeasesTable;
  retention_dataset_people: RetentionDatasetPeopleTable;
}
