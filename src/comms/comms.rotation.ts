import { walkInBatches } from '../core/batches.js';
import type { Database } from '../core/db.js';
import { PledgeError } from '../core/errors.js';
import type { Keyring } from '../core/keyring.js';
import { rewrapPart } from './comms.sealing.js';
import { commsStore as store } from './comms.store.js';

/**
 * The outbox's part of `pledge keys rotate`. A message not yet delivered (queued, being sent,
 * failed) keeps its data, and the address of a recipient who is not a subject, sealed with the
 * keyring's KEK directly (comms.sealing): before the old master key can go, they must move to
 * PLEDGE_MASTER_KEY's KEK like the data keys. The walk is the key store's (KeyStore.rotateBatch):
 * batches in id order, each in one transaction, resumable by walking again from the start.
 *
 * Servers go on queueing and sending meanwhile. A message is replaced on condition that its
 * sealed values are still the ones read, so a delivery or a drop that cleared them wins; a claim,
 * a failed attempt or a retry leave them as they are, and the sender opens the re-wrapped values
 * as well as the old ones (it holds both keys). Delivered and dropped messages hold nothing sealed.
 */
export async function rewrapOutboxBatch(database: Database, keyring: Keyring, batchSize: number, after = ''): Promise<{ rewrapped: number; next: string | null }> {
  return database.db.transaction().execute(async (trx) => {
    const rows = await store.sealedUnderAnotherKek(trx, database.dialect, keyring.kekId, after, batchSize);
    let rewrapped = 0;
    for (const row of rows) {
      let sealed: { to_sealed: string | null; data_sealed: string };
      try {
        sealed = {
          to_sealed: row.to_sealed === null ? null : rewrapPart(keyring, row.id, 'to', row.to_sealed),
          data_sealed: row.data_sealed === '' ? '' : rewrapPart(keyring, row.id, 'data', row.data_sealed),
        };
      } catch (error) {
        // Sealed under a key this process does not hold, or altered: left as it is (the sender
        // fails it with a code), and counted apart by countOutboxToRewrap. One such message
        // must not stop the rotation of the others.
        if (error instanceof PledgeError && (error.code === 'master_key_invalid' || error.code === 'data_integrity_failed')) continue;
        throw error;
      }
      if (await store.replaceSealed(trx, row.id, row, sealed)) rewrapped += 1;
    }
    return { rewrapped, next: rows.length === batchSize ? rows[rows.length - 1]!.id : null };
  });
}

/** Re-wraps every message still sealed under another KEK than the current one; returns how many. */
export async function rewrapOutbox(database: Database, keyring: Keyring, batchSize = 1000, onProgress?: (rewrapped: number) => void): Promise<number> {
  let total = 0;
  await walkInBatches(
    (after) => rewrapOutboxBatch(database, keyring, batchSize, after),
    ({ rewrapped }) => {
      total += rewrapped;
      onProgress?.(total);
    },
  );
  return total;
}

/**
 * Messages still sealed under another KEK than the current one: `remaining` under a KEK this
 * process holds — they need that old key until a rotation re-wraps them — and `unreadable`
 * under one it does not hold at all, which no configuration here can send, and which dropping
 * an old key changes nothing for. (A message altered in the database under a KEK held here
 * stays in `remaining`: counting errs on the side of keeping a key.)
 */
export async function countOutboxToRewrap(database: Database, keyring: Keyring): Promise<{ remaining: number; unreadable: number }> {
  let remaining = 0;
  let unreadable = 0;
  for (const group of await store.countSealedByKek(database.db, keyring.kekId)) {
    const others = [group.toKek, group.dataKek].filter((kekId): kekId is string => !!kekId && kekId !== keyring.kekId);
    if (others.every((kekId) => keyring.canOpen(kekId))) remaining += group.count;
    else unreadable += group.count;
  }
  return { remaining, unreadable };
}
