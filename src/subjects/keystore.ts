import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { walkInBatches } from '../core/batches.js';
import { compiledFirst, type Database } from '../core/db.js';
import type { Keyring } from '../core/keyring.js';
import { PledgeError } from '../core/errors.js';
import { TtlCache } from '../core/ttl-cache.js';
import type { KeystoreTables, SubjectFieldsTable } from './subjects.tables.js';
import type { FieldValue } from './subjects.service.js';
import { KeystoreShredder } from './keystore-shredder.js';

const wrappedKeyOf = compiledFirst((db: Kysely<KeystoreTables>, subjectId: string) =>
  db.selectFrom('subject_keys').select(['kek_id', 'wrapped']).where('subject_id', '=', subjectId),
);

/**
 * An unwrapped data key, and the field values opened with it while it stays cached — by
 * category, each with the exact ciphertext it came from, so a changed or replaced field is
 * opened anew. They leave memory together: on erasure here, or when the key's entry expires or
 * is evicted. Opening a field (AES-GCM) costs more than reading its row, and a service reads the
 * same person many times a minute.
 */
export interface SubjectKey {
  readonly key: Buffer;
  readonly opened: Map<string, OpenedField>;
}

/**
 * A field opened with its subject's key: the row it was read from, and what a read answers for
 * it (frozen: every read of the field shares it, and read-json.ts serialises it once).
 */
export interface OpenedField {
  readonly sealed: string;
  readonly row: SubjectFieldsTable;
  readonly answer: FieldValue;
}

/** What a walk over the key store re-wrapped, and the subjects whose keys it could not open. */
export interface KeyRotation {
  rotated: number;
  /** Under a master key this process does not hold (not in PLEDGE_PREVIOUS_MASTER_KEYS). */
  unreadable: string[];
  /** Failing their integrity check: the stored row was altered or corrupted. */
  damaged: string[];
}

interface KeyRotationBatch extends KeyRotation {
  next: string | null;
}

/**
 * Each subject's data key (32 random bytes), wrapped by the key-encryption key and kept in the
 * key store database. Destroying the key is the erasure: every ciphertext of that subject,
 * wherever a copy of it lives, becomes noise.
 */
export class KeyStore {
  /**
   * Recently used keys, unwrapped. Safe across processes: a read checks the subject's status
   * and fields in the main database first, so a key still cached here after another process
   * erased the subject opens nothing. Erasing through this process drops the entry at once.
   */
  private readonly recent = new TtlCache<string, SubjectKey>({ max: 10_000, ttlMs: 60_000 });

  private readonly shredder: KeystoreShredder;

  constructor(
    private readonly database: Database<KeystoreTables>,
    private readonly keyring: Keyring,
  ) {
    this.shredder = new KeystoreShredder(database);
  }

  private context(subjectId: string): string {
    return `subject-key:${subjectId}`;
  }

  /** Creates and stores a fresh data key for each subject id. */
  async create(subjectIds: readonly string[], now: Date): Promise<Map<string, Buffer>> {
    const keys = new Map<string, Buffer>();
    // Under the KEK every process sharing the database can open, also in the middle of a rotation.
    await this.keyring.refresh();
    const rows = subjectIds.map((subjectId) => {
      const key = randomBytes(32);
      keys.set(subjectId, key);
      const { kekId, wrapped } = this.keyring.wrap(key, this.context(subjectId));
      return { subject_id: subjectId, kek_id: kekId, wrapped, created_at: now.toISOString() };
    });
    // 4 columns a row: stay well under SQLite's bound-parameter limit.
    for (let start = 0; start < rows.length; start += 5000) {
      await this.database.db.insertInto('subject_keys').values(rows.slice(start, start + 5000)).execute();
    }
    return keys;
  }

  async get(subjectId: string): Promise<Buffer | undefined> {
    return (await this.entry(subjectId))?.key;
  }

  /** The subject's key with the values recently opened with it; undefined when the key is destroyed. */
  async entry(subjectId: string): Promise<SubjectKey | undefined> {
    const cached = this.recent.get(subjectId);
    if (cached) return cached;
    const row = await wrappedKeyOf(this.database.db, subjectId);
    return row ? this.recent.set(subjectId, { key: this.keyring.unwrap(row.kek_id, row.wrapped, this.context(subjectId)), opened: new Map() }) : undefined;
  }

  /**
   * Destroys the keys (crypto-shredding). Returns how many existed. On SQLite it resolves once
   * no copy of them is left in the key store's files either (KeystoreShredder).
   */
  async destroy(subjectIds: readonly string[]): Promise<number> {
    if (subjectIds.length === 0) return 0;
    for (const subjectId of subjectIds) this.recent.delete(subjectId);
    await this.shredder.beforeDelete();
    const result = await this.database.db.deleteFrom('subject_keys').where('subject_id', 'in', subjectIds).executeTakeFirst();
    const destroyed = Number(result.numDeletedRows);
    if (destroyed > 0) await this.shredder.afterDelete();
    return destroyed;
  }

  /** Keys still wrapped by another key-encryption key than the current one. */
  async countToRotate(): Promise<number> {
    const row = await this.database.db
      .selectFrom('subject_keys')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .where('kek_id', '!=', this.keyring.kekId)
      .executeTakeFirstOrThrow();
    return Number(row.count);
  }

  /**
   * Re-wraps, under the current key-encryption key, the keys still wrapped by another one among
   * the next `batchSize` keys after `after` (in subject id order), in one transaction. Walk
   * the store by passing back `next` until it is null. Resumable by construction: a rotation
   * interrupted anywhere is completed by walking again from the start, and keys already
   * re-wrapped are only read, not written.
   *
   * A key this process cannot open is left as it is and named, and the walk goes on: one under
   * a master key it does not hold (`unreadable`), or one that fails its integrity check — its row
   * altered or corrupted (`damaged`). Stopping there would leave every later key under the old
   * master key, which the operator is about to drop. Each update is conditional on the row as
   * read, so a key erased or re-wrapped meanwhile by another process is not written over.
   */
  async rotateBatch(batchSize: number, after = ''): Promise<KeyRotationBatch> {
    return this.database.db.transaction().execute(async (trx) => {
      const rows = await trx
        .selectFrom('subject_keys')
        .select(['subject_id', 'kek_id', 'wrapped'])
        .where('subject_id', '>', after)
        .orderBy('subject_id')
        .limit(batchSize)
        .execute();
      const batch: KeyRotationBatch = { rotated: 0, unreadable: [], damaged: [], next: rows.length === batchSize ? rows[rows.length - 1]!.subject_id : null };
      for (const row of rows) {
        if (row.kek_id === this.keyring.kekId) continue;
        if (!this.keyring.canOpen(row.kek_id)) {
          batch.unreadable.push(row.subject_id);
          continue;
        }
        let rewrapped: { kekId: string; wrapped: string };
        try {
          rewrapped = this.keyring.rewrap(row.kek_id, row.wrapped, this.context(row.subject_id));
        } catch (error) {
          if (!(error instanceof PledgeError && error.code === 'data_integrity_failed')) throw error;
          batch.damaged.push(row.subject_id);
          continue;
        }
        const updated = await trx
          .updateTable('subject_keys')
          .set({ kek_id: rewrapped.kekId, wrapped: rewrapped.wrapped })
          .where('subject_id', '=', row.subject_id)
          .where('kek_id', '=', row.kek_id)
          .where('wrapped', '=', row.wrapped)
          .executeTakeFirst();
        if (Number(updated.numUpdatedRows) > 0) batch.rotated += 1;
      }
      return batch;
    });
  }

  /** Re-wraps every key not under the current key-encryption key it can open; says how many, and which it could not. */
  async rotateAll(batchSize = 1000, onProgress?: (rotated: number) => void): Promise<KeyRotation> {
    const total: KeyRotation = { rotated: 0, unreadable: [], damaged: [] };
    await walkInBatches(
      (after) => this.rotateBatch(batchSize, after),
      (batch) => {
        total.rotated += batch.rotated;
        total.unreadable.push(...batch.unreadable);
        total.damaged.push(...batch.damaged);
        onProgress?.(total.rotated);
      },
    );
    return total;
  }

  // --- comms

  /** Several subjects' data keys in one query (mail resolves a batch of recipients at once). */
  async getMany(subjectIds: readonly string[]): Promise<Map<string, Buffer>> {
    const keys = new Map<string, Buffer>();
    for (let start = 0; start < subjectIds.length; start += 5000) {
      const rows = await this.database.db.selectFrom('subject_keys').select(['subject_id', 'kek_id', 'wrapped']).where('subject_id', 'in', subjectIds.slice(start, start + 5000)).execute();
      for (const row of rows) keys.set(row.subject_id, this.keyring.unwrap(row.kek_id, row.wrapped, this.context(row.subject_id)));
    }
    return keys;
  }
}
