export interface SubjectsTable {
  id: string;
  /** JSON array of subject kind ids from the policy (a customer who was first a referral: both). */
  kinds: string;
  status: 'active' | 'closed' | 'erased';
  /** 1 while processing is restricted (only storage and legal obligations may use the data). */
  restricted: number;
  created_at: string;
  updated_at: string;
  last_activity_at: string;
  closed_at: string | null;
  erased_at: string | null;
}

/** Keyed by (kind, blind_index): one identity belongs to one subject. */
export interface SubjectIdentitiesTable {
  subject_id: string;
  kind: 'email' | 'user_id' | 'phone' | 'external_id' | 'cookie_id';
  /** HMAC of the normalised value: look-ups go through this, never through a scan. */
  blind_index: string;
  /** The normalised value, sealed with the subject's data key. */
  value: string;
  created_at: string;
}

/** Keyed by (subject_id, category): one value a category per subject. */
export interface SubjectFieldsTable {
  subject_id: string;
  category: string;
  /** JSON of the value, sealed with the subject's data key, bound to subject and category. */
  value: string;
  source: 'person' | 'automatic' | 'partner' | 'other_person' | 'staff';
  partner: string | null;
  /** The purpose the data was collected for. */
  purpose: string;
  collected_at: string;
  updated_at: string;
}

export interface SubjectTables {
  subjects: SubjectsTable;
  subject_identities: SubjectIdentitiesTable;
  subject_fields: SubjectFieldsTable;
}

/**
 * The key store: each subject's data key, wrapped by the key-encryption key. It lives in its own
 * database (a separate SQLite file by default) so that erasing a subject — deleting its key
 * here — also makes every copy of the main database taken before (backups, replicas, dumps)
 * unreadable for that subject.
 */
export interface SubjectKeysTable {
  subject_id: string;
  kek_id: string;
  wrapped: string;
  created_at: string;
}

export interface KeystoreTables {
  subject_keys: SubjectKeysTable;
}
