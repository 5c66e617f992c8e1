export interface KeyringTable {
  /** What the secret is for: blind_index, audit_signing, token_signing. */
  name: string;
  /** Id of the key-encryption key that wraps it (derived from the master key). */
  kek_id: string;
  /** The secret, AES-256-GCM-wrapped by that key (base64url). */
  wrapped: string;
  created_at: string;
}

export interface KeyringTables {
  keyring: KeyringTable;
}
