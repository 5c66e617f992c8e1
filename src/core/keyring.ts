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
 *   signatures stay valid across a rotation);
 * - the address and data of outbox messages not yet delivered, sealed through `wrap` (see
 *   comms.sealing).
 *
 * Rotation: start with the new key in PLEDGE_MASTER_KEY and the old one in
 * PLEDGE_PREVIOUS_MASTER_KEYS, run `pledge keys rotate`, then drop the old key.
 *
 * Which KEK new data keys are wrapped under is decided by the database, not by each process's
 * configuration: it is the one the keyring's secrets are wrapped under (`wrapKekId`), which
 * `pledge keys rotate` switches first. So while processes are restarted one by one with the
 * new key added, those already restarted keep wrapping under the old KEK, which the others
 * can still open; and once rotation switched, every process that holds the new KEK wraps
 * under it within KEK_REFRESH_MS (at once when it awaits `refresh` first, as KeyStore.create
 * and the outbox's enqueue do). A process that does not hold the KEK the database names
 * wraps under its own (and `pledge keys rotate` reports the keys it left behind).
 */
export const KEYRING_SECRETS = ['blind_index', 'audit_signing', 'token_signing'] as const;
export type KeyringSecret = (typeof KEYRING_SECRETS)[number];

const KEK_LABEL = 'pledge/kek/v1';

/** How long a process goes on wrapping under the KEK it last read from the database. */
export const KEK_REFRESH_MS = 1000;

/** The secret whose row names the KEK the database currently wraps under. */
const DESIGNATING_SECRET: KeyringSecret = 'blind_index';

export interface KeyringOptions {
  /**
   * Master keys to look at again when the database names a KEK this process does not hold
   * (development: the key file a rotation replaced while a server was running). At most once
   * per KEK_REFRESH_MS.
   */
  reload?: () => readonly Buffer[];
}

export class Keyring {
  /** The KEK of PLEDGE_MASTER_KEY: what `pledge keys rotate` re-wraps everything under. */
  readonly kekId: string;
  private readonly keks: Map<string, Buffer>;
  private readonly secrets: Map<KeyringSecret, Buffer>;
  /** The KEK new keys are wrapped under: the database's choice when this process holds it. */
  private wrapKek: string;
  private checkedAt = 0;
  private checking: Promise<void> | undefined;
  private reloadedAt = 0;

  private constructor(
    keks: Map<string, Buffer>,
    currentKekId: string,
    secrets: Map<KeyringSecret, Buffer>,
    wrapKek: string,
    private readonly database: Database,
    private readonly options: KeyringOptions,
  ) {
    this.keks = keks;
    this.kekId = currentKekId;
    this.secrets = secrets;
    this.wrapKek = wrapKek;
    this.checkedAt = Date.now();
  }

  /** Loads (creating on first start) the keyring secrets. Safe with several processes starting together. */
  static async open(database: Database, masterKey: Buffer, previousMasterKeys: readonly Buffer[], clock: Clock, options: KeyringOptions = {}): Promise<Keyring> {
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
    const designated = rows.find((row) => row.name === DESIGNATING_SECRET)?.kek_id ?? currentId;
    return new Keyring(keks, currentId, secrets, designated, database, options);
  }

  /** The KEK new keys are wrapped under now (see the class comment). */
  get wrapKekId(): string {
    return this.wrapKek;
  }

  /**
   * Reads again which KEK the database wraps under, when the last look is older than
   * KEK_REFRESH_MS. Callers about to wrap keys that other processes will open await it;
   * concurrent callers share one read.
   */
  async refresh(): Promise<void> {
    if (Date.now() - this.checkedAt < KEK_REFRESH_MS) return;
    this.checking ??= (async () => {
      try {
        const row = await this.database.db.selectFrom('keyring').select('kek_id').where('name', '=', DESIGNATING_SECRET).executeTakeFirst();
        const designated = row?.kek_id ?? this.kekId;
        this.wrapKek = this.canOpen(designated) ? designated : this.kekId;
        this.checkedAt = Date.now();
      } finally {
        this.checking = undefined;
      }
    })();
    return this.checking;
  }

  /**
   * Whether this process can open what `kekId` wrapped: PLEDGE_MASTER_KEY's KEK or one of
   * PLEDGE_PREVIOUS_MASTER_KEYS', looking at `reload` once if needed.
   */
  canOpen(kekId: string): boolean {
    if (this.keks.has(kekId)) return true;
    if (!this.options.reload || Date.now() - this.reloadedAt < KEK_REFRESH_MS) return false;
    this.reloadedAt = Date.now();
    for (const masterKey of this.options.reload()) {
      const kek = deriveKey(masterKey, KEK_LABEL);
      this.keks.set(keyId(kek), kek);
    }
    return this.keks.has(kekId);
  }

  secret(name: KeyringSecret): Buffer {
    const secret = this.secrets.get(name);
    if (!secret) throw new PledgeError('internal', `keyring secret ${name} is missing`);
    return secret;
  }

  /**
   * Wraps a data key under the KEK the database wraps under (wrapKekId, as of the last
   * refresh); `context` binds it to its owner.
   */
  wrap(dataKey: Buffer, context: string): { kekId: string; wrapped: string } {
    if (Date.now() - this.checkedAt >= KEK_REFRESH_MS) void this.refresh().catch(() => {});
    return { kekId: this.wrapKek, wrapped: seal(this.keks.get(this.wrapKek)!, dataKey, context) };
  }

  /** Opens a wrapped key and wraps it again under PLEDGE_MASTER_KEY's KEK (rotation). */
  rewrap(kekId: string, wrapped: string, context: string): { kekId: string; wrapped: string } {
    const key = this.unwrap(kekId, wrapped, context);
    return { kekId: this.kekId, wrapped: seal(this.keks.get(this.kekId)!, key, context) };
  }

  unwrap(kekId: string, wrapped: string, context: string): Buffer {
    const kek = this.canOpen(kekId) ? this.keks.get(kekId) : undefined;
    if (!kek) {
      throw new PledgeError('master_key_invalid', `data is wrapped by a master key (key id ${kekId}) that is not configured; add it to PLEDGE_PREVIOUS_MASTER_KEYS and run pledge keys rotate`);
    }
    return open(kek, wrapped, context);
  }

  /**
   * Re-wraps the keyring's own secrets under the current KEK (part of `pledge keys rotate`).
   * This is also the switch: from here on processes holding that KEK wrap new keys under it.
   */
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
    this.wrapKek = this.kekId;
    this.checkedAt = Date.now();
    return count;
  }
}

export { fromBase64Url, toBase64Url };
