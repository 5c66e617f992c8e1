export interface PolicyVersionsTable {
  id: string;
  version: string;
  hash: string;
  effective_date: string;
  /** The validated policy document as canonical JSON. */
  document: string;
  recorded_at: string;
}

export interface PolicyTables {
  policy_versions: PolicyVersionsTable;
}
