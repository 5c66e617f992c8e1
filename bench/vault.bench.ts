import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { manualClock, systemClock } from '../src/core/clock.js';
import { blindIndex, seal } from '../src/core/crypto.js';
import { newId } from '../src/core/ids.js';
import { Keyring } from '../src/core/keyring.js';
import { loadPolicyText, requirePolicy } from '../src/policy/policy.load.js';
import { KeyStore } from '../src/subjects/keystore.js';
import type { CreateSubjectInput } from '../src/subjects/subjects.service.js';
import type { SubjectIdentitiesTable, SubjectsTable } from '../src/subjects/subjects.tables.js';
import type { Actor } from '../src/staff/permissions.js';
import { createTestVault } from '../test/support/vault.js';
import { median, targetRow, type ResultRow } from './support.js';

const actor: Actor = { type: 'system', id: 'bench' };

/** The demo policy, widened so one purpose takes eight categories from the person. */
function benchPolicy() {
  const text = readFileSync('examples/demo/pledge.yaml', 'utf8')
    .replace('categories: [user.name, user.contact.email, user.account.username, user.authorization.credentials]', 'categories: [user.name, user.contact.email, user.account.username, user.account.settings, user.authorization.credentials]')
    .replace('categories: [user.contact.address, user.contact.phone_number, user.behavior.purchase_history]', 'categories: [user.contact.address, user.contact.phone_number, user.contact.url, user.behavior.purchase_history]')
    .replace('categories: [user.name, user.contact, user.behavior.purchase_history, user.payment]', 'categories: [user.name, user.contact, user.account, user.behavior.purchase_history, user.payment]');
  return requirePolicy(loadPolicyText(text, 'bench-policy.yaml'));
}

/** The engine's vault on fresh SQLite files, on the real clock. */
function openVault(masterKey = randomBytes(32)) {
  return createTestVault('sqlite', { policy: benchPolicy(), clock: systemClock, masterKey });
}

function person(index: number): CreateSubjectInput {
  return {
    kinds: ['customer'],
    identities: [{ kind: 'email', value: `person${index}@example.com` }],
    data: {
      purpose: 'order_fulfilment',
      source: 'person',
      fields: {
        'user.name': `Person ${index}`,
        'user.contact.email': `person${index}@example.com`,
        'user.contact.phone_number': `+1 555 ${String(index).padStart(7, '0')}`,
        'user.contact.address': { street: `${index} Main Street`, city: 'Springfield', postcode: '12345' },
        'user.contact.url': `https://example.com/~person${index}`,
        'user.account.username': `person${index}`,
        'user.account.settings': { language: 'en', newsletter: index % 2 === 0 },
        'user.behavior.purchase_history': [{ order: `o-${index}`, total: 42.5 }],
      },
    },
  };
}

/** (b) 100,000 subjects × 8 fields through the batch API's service, 1,000 a call, with audit. */
export async function benchBatchCreate(total = 100_000): Promise<ResultRow[]> {
  const vault = await openVault();
  try {
    const started = performance.now();
    for (let offset = 0; offset < total; offset += 1000) {
      await vault.subjects.createMany(actor, Array.from({ length: 1000 }, (_, index) => person(offset + index)));
    }
    const seconds = (performance.now() - started) / 1000;
    return [targetRow(`batch-create ${total.toLocaleString('en')} subjects × 8 fields (1,000 a call, encrypted, audited; SQLite)`, `${seconds.toFixed(1)} s (${Math.round(total / seconds).toLocaleString('en')} subjects/s)`, '≤ 20 s', seconds <= 20)];
  } finally {
    await vault.close();
  }
}

/**
 * (c) look-up by email among 1,000,000 subjects, in process: normalise, blind index, one
 * index probe, the subject row. The identities are written directly (sealed values and real
 * blind indexes) so that building the million takes seconds, not the batch path's minutes.
 */
export async function benchLookup(total = 1_000_000, samples = 2000): Promise<ResultRow[]> {
  const vault = await openVault();
  try {
    const blindKey = vault.keyring.secret('blind_index');
    const dummyKey = randomBytes(32);
    const stamp = '2026-03-01T00:00:00.000Z';
    const chunk = 3000;
    for (let offset = 0; offset < total; offset += chunk) {
      const subjects: SubjectsTable[] = [];
      const identities: SubjectIdentitiesTable[] = [];
      for (let index = offset; index < Math.min(total, offset + chunk); index++) {
        const id = newId('sub');
        const email = `person${index}@example.com`;
        subjects.push({ id, kinds: '["customer"]', status: 'active' as const, restricted: 0, created_at: stamp, updated_at: stamp, last_activity_at: stamp, closed_at: null, erased_at: null });
        identities.push({ subject_id: id, kind: 'email' as const, blind_index: blindIndex(blindKey, 'email', email), value: seal(dummyKey, Buffer.from(email), `identity:${id}:email`), created_at: stamp });
      }
      await vault.database.db.transaction().execute(async (trx) => {
        await trx.insertInto('subjects').values(subjects).execute();
        await trx.insertInto('subject_identities').values(identities).execute();
      });
    }
    // Warm-up, then time look-ups of random people (each call also writes its audit entry).
    for (let index = 0; index < 200; index++) await vault.subjects.lookup(actor, { kind: 'email', value: `person${(index * 7919) % total}@example.com` });
    const times: number[] = [];
    for (let index = 0; index < samples; index++) {
      const who = `Person${(index * 104_729) % total}@Example.com`;
      const started = performance.now();
      await vault.subjects.lookup(actor, { kind: 'email', value: who });
      times.push(performance.now() - started);
    }
    const result = median(times);
    return [targetRow(`look-up by email among ${total.toLocaleString('en')} subjects, in process (audited), median of ${samples}`, `${result.toFixed(3)} ms`, '≤ 0.5 ms', result <= 0.5)];
  } finally {
    await vault.close();
  }
}

/** (e) `pledge keys rotate` over 1,000,000 data keys: re-wrap under a new master key. */
export async function benchRotation(total = 1_000_000): Promise<ResultRow[]> {
  const oldMaster = randomBytes(32);
  const vault = await openVault(oldMaster);
  try {
    const ids = Array.from({ length: total }, () => newId('sub'));
    for (let offset = 0; offset < total; offset += 50_000) await vault.keystore.create(ids.slice(offset, offset + 50_000), new Date());
    const keyring = await Keyring.open(vault.database, randomBytes(32), [oldMaster], manualClock());
    const keystore = new KeyStore(vault.keystoreDatabase, keyring);
    const started = performance.now();
    await keyring.rewrapSecrets(vault.database);
    const { rotated } = await keystore.rotateAll(1000);
    const seconds = (performance.now() - started) / 1000;
    if (rotated !== total) throw new Error(`rotated ${rotated} of ${total}`);
    return [targetRow(`key rotation of ${total.toLocaleString('en')} subjects' data keys (SQLite, batches of 1,000)`, `${seconds.toFixed(1)} s`, '≤ 60 s', seconds <= 60)];
  } finally {
    await vault.close();
  }
}

/**
 * Erasure (crypto-shredding) of 1,000 subjects on SQLite: one after another, and 50 at a time.
 * Each erasure destroys the data key and, before it answers, truncates the key store's
 * write-ahead log so no copy of the key stays on disk; erasures that arrive together share
 * that checkpoint. The issue sets no target: the rows say what the guarantee costs.
 */
export async function benchErasure(total = 1000, together = 50): Promise<ResultRow[]> {
  const vault = await openVault();
  try {
    const ids: string[] = [];
    for (let offset = 0; offset < 2 * total; offset += 1000) {
      const created = await vault.subjects.createMany(actor, Array.from({ length: Math.min(1000, 2 * total - offset) }, (_, index) => person(offset + index)));
      ids.push(...created.map((subject) => subject.id));
    }
    const alone = ids.slice(0, total);
    const times: number[] = [];
    for (const id of alone) {
      const started = performance.now();
      await vault.subjects.erase(actor, id);
      times.push(performance.now() - started);
    }
    const grouped = ids.slice(total);
    const started = performance.now();
    for (let offset = 0; offset < grouped.length; offset += together) {
      await Promise.all(grouped.slice(offset, offset + together).map((id) => vault.subjects.erase(actor, id)));
    }
    const groupedSeconds = (performance.now() - started) / 1000;
    return [
      { benchmark: `erasure of ${total.toLocaleString('en')} subjects one after another (key destroyed, key store log truncated before the answer; SQLite)`, measured: `${median(times).toFixed(1)} ms median each`, ceiling: '—', ratio: '—', target: 'none set', verdict: 'info' },
      { benchmark: `erasure of ${total.toLocaleString('en')} subjects, ${together} at a time (SQLite)`, measured: `${groupedSeconds.toFixed(2)} s in all (${Math.round(total / groupedSeconds).toLocaleString('en')} erasures/s)`, ceiling: '—', ratio: '—', target: 'none set', verdict: 'info' },
    ];
  } finally {
    await vault.close();
  }
}
