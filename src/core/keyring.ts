import type { Clock } from './clock.js';
import { deriveKey, keyId, open, randomToken, seal, fromBase64Url, toBase64Url } from './crypto.js';
import type { Database } from './db.js';
import { PledgeError } from './errors.js';

/**
 * The keys of the engine. From the master key comes the key-encryption key (KEK), named by its
 * key id. The KEK wraps:
 * - each subject's data key (the subjects domain stores those, wrapped through `wrap`);
 * - the engine's long-lived random secrets, kept in the `keyring` table: the blind-index key,
 *   the audit signing seed, the token signing key. They are random rather than derived so
 *   that changing the master key re-wraps them instead of changing them (blind indexes and
 *   signatures stay valid across a rotation).
 *
 * Rotation: start with the new key in PLEDGE_MASTER_KEY and the old one in
 * PLEDGE_PREVIOUS_MASTER_KEYS, run `pledge keys rotate`, then drop the old key.
 */
export const KEYRING_SECRETS = ['blind_index', 'audit_signing', 'token_signing'] as const;
export type KeyringSecret = (typeof KEYRING_SECRETS)[number];

const KEK_LABEL = 'pledge/kek/v1';

export class Keyring {
  readonly kekId: string;
  private readonly keks: Map<string, Buffer>;
  private readonly secrets: Map<KeyringSecret, Buffer>;

  private constructor(keks: Map<string, Buffer>, currentKekId: string, secrets: Map<KeyringSecret, Buffer>) {
    this.keks = keks;
    this.kekId = currentKekId;
    this.secrets = secrets;
  }

  /** Loads (creating on first start) the keyring secrets. Safe with several processes starting together. */
  static async open(database: Database, masterKey: Buffer, previousMasterKeys: readonly Buffer[], clock: Clock): Promise<Keyring> {
    const current = deriveKey(masterKey, KEK_LABEL);
    const keks = new Map<string, Buffer>([[keyId(current), current]]);
    for (const previous of previousMasterKeys) {
      const kek = deriveKey(previous, KEK_LABEL);
      keks.set(keyId(kek), kek);
    }
    const currentId = keyId(current);
    const now = clock.now().toISOString();
    await database.db
      .insertInto('keyring')
      .values(KEYRING_SECRETS.map((name) => ({ name, kek_id: currentId, wrapped: seal(current, Buffer.from(randomToken(32), 'base64url'), `keyring:${name}`), created_at: now })))
      .onConflict((conflict) => conflict.column('name').doNothing())
      .execute();
    const rows = await database.db.selectFrom('keyring').selectAll().execute();
    const secrets = new Map<KeyringSecret, Buffer>();
    for (const row of rows) {
      const kek = keks.get(row.kek_id);
      if (!kek) {
        throw new PledgeError(
          'master_key_invalid',
          `the keyring was written with a master key (key id ${row.kek_id}) that is neither PLEDGE_MASTER_KEY (key id ${currentId}) nor one of PLEDGE_PREVIOUS_MASTER_KEYS`,
        );
      }
      secrets.set(row.name as KeyringSecret, open(kek, row.wrapped, `keyring:${row.name}`));
    }
    return new Keyring(keks, currentId, secrets);
  }

  secret(name: KeyringSecret): Buffer {
    const secret = this.secrets.get(name);
    if (!secret) throw new PledgeError('internal', `keyring secret ${name} is missing`);
    return secret;
  }

  /** Wraps a data key under the current KEK; `context` binds it to its owner. */
  wrap(dataKey: Buffer, context: string): { kekId: string; wrapped: string } {
    return { kekId: this.kekId, wrapped: seal(this.keks.get(this.kekId)!, dataKey, context) };
  }

  unwrap(kekId: string, wrapped: string, context: string): Buffer {
    const kek = this.keks.get(kekId);
    if (!kek) {
      throw new PledgeError('master_key_invalid', `data is wrapped by a master key (key id ${kekId}) that is not configured; add it to PLEDGE_PREVIOUS_MASTER_KEYS and run pledge keys rotate`);
    }
    return open(kek, wrapped, context);
  }

  /** Re-wraps the keyring's own secrets under the current KEK (part of `pledge keys rotate`). */
  async rewrapSecrets(database: Database): Promise<number> {
    let count = 0;
    for (const [name, secret] of this.secrets) {
      const result = await database.db
        .updateTable('keyring')
        .set({ kek_id: this.kekId, wrapped: seal(this.keks.get(this.kekId)!, secret, `keyring:${name}`) })
        .where('name', '=', name)
        .where('kek_id', '!=', this.kekId)
        .executeTakeFirst();
      count += Number(result.numUpdatedRows);
    }
    return count;
  }
}

export { fromBase64Url, toBase64Url };
