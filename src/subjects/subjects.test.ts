import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { manualClock } from '../core/clock.js';
import { openDatabase, migrate } from '../core/db.js';
import { PledgeError, type ErrorCode } from '../core/errors.js';
import { Keyring } from '../core/keyring.js';
import { loadPolicyText, requirePolicy } from '../policy/policy.load.js';
import type { Actor } from '../staff/permissions.js';
import { createTestVault, type TestVault } from '../../test/support/vault.js';
import { testDialects } from '../../test/support/databases.js';
import { KeyStore } from './keystore.js';
import { SubjectsService } from './subjects.service.js';
import { PolicyDefaultConsentGate } from './consent-gate.js';
import { rejects } from '../../test/support/errors.js';

const officer: Actor = { type: 'staff', id: 'stf_officer', role: 'privacy_officer' };
const support: Actor = { type: 'staff', id: 'stf_support', role: 'support' };
const shopKey: Actor = { type: 'api_key', id: 'key_shop', permissions: ['subjects:read', 'subjects:write', 'data:read', 'data:write'], purposes: ['order_fulfilment', 'account'] };

const DEMO = readFileSync('examples/demo/pledge.yaml', 'utf8');

const jane = () => ({
  kinds: ['customer'],
  identities: [{ kind: 'email' as const, value: ' Jane.Doe@Example.COM ' }],
  data: {
    purpose: 'order_fulfilment',
    source: 'person' as const,
    fields: { 'user.name': 'Jane Doe', 'user.contact.address': { street: '1 Elm Street', city: 'Portland' }, 'user.contact.phone_number': '+1 207 555 0199' },
  },
});


for (const dialect of testDialects()) {
  describe(`the vault on ${dialect}`, () => {
    let vault: TestVault;
    before(async () => {
      vault = await createTestVault(dialect);
    });
    after(() => vault.close());

    const count = async (table: 'subjects' | 'subject_fields' | 'subject_identities') =>
      Number((await vault.database.db.selectFrom(table).select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

    test('a purpose reads only the categories the policy gives it', async () => {
      const subject = await vault.subjects.create(officer, jane());
      assert.equal(subject.status, 'active');
      assert.deepEqual(subject.kinds, ['customer']);
      const orders = await vault.subjects.readData(officer, subject.id, 'order_fulfilment');
      assert.deepEqual(Object.keys(orders.fields).sort(), ['user.contact.address', 'user.contact.phone_number', 'user.name']);
      assert.deepEqual(orders.fields['user.contact.address']!.value, { street: '1 Elm Street', city: 'Portland' });
      assert.equal(orders.fields['user.name']!.source, 'person');
      // Security may use only the IP address, the username and payments: none of this.
      const security = await vault.subjects.readData(officer, subject.id, 'security');
      assert.deepEqual(security.fields, {});
    });

    test('an opt-in purpose is refused without consent, with the reason', async () => {
      const subject = await vault.subjects.create(officer, { ...jane(), identities: [{ kind: 'email', value: 'optin@example.com' }] });
      const error = await rejects(vault.subjects.readData(officer, subject.id, 'marketing'), 'purpose_not_permitted', /needs the person's consent/);
      assert.equal(error.details?.reason, 'consent');
    });

    test('restriction blocks every purpose but legal obligations', async () => {
      const subject = await vault.subjects.create(officer, { ...jane(), identities: [{ kind: 'email', value: 'restricted@example.com' }] });
      await vault.subjects.setRestricted(officer, subject.id, true);
      await rejects(vault.subjects.readData(officer, subject.id, 'order_fulfilment'), 'purpose_not_permitted', /restricted/);
      const legal = await vault.subjects.readData(officer, subject.id, 'legal_compliance');
      assert.ok('user.name' in legal.fields);
    });

    test('writes the policy does not allow are refused and store nothing', async () => {
      const subject = await vault.subjects.create(officer, { kinds: ['customer'], identities: [{ kind: 'email', value: 'writer@example.com' }] });
      const before = await count('subject_fields');
      const write = (fields: Record<string, unknown>, purpose = 'order_fulfilment', source: 'person' | 'automatic' = 'person') =>
        vault.subjects.writeData(officer, subject.id, { purpose, source, fields });
      await rejects(write({ 'user.name': 'Ok', 'user.health': 'diabetic' }), 'category_not_collected', /does not collect "user.health"/);
      await rejects(write({ 'user.name': 'Ok' }, 'profiling'), 'unknown_purpose');
      await rejects(write({ 'user.device.ip_address': '203.0.113.9' }, 'analytics', 'person'), 'category_not_collected', /from source person/);
      await rejects(write({ 'user.contact.phone_number': '+1 555' }, 'marketing'), 'category_not_permitted', /"marketing" may not use "user.contact.phone_number"/);
      await rejects(write({ 'user.nme': 'x' }), 'category_not_collected', /not a data category/);
      assert.equal(await count('subject_fields'), before, 'nothing was stored');
      const written = await write({ 'user.name': 'Writer' });
      assert.deepEqual(written.categories, ['user.name']);
    });

    test('a category is stored only about the kinds of people the policy collects it from', async () => {
      const before = { subjects: await count('subjects'), fields: await count('subject_fields') };
      const write = (fields: Record<string, unknown>) => ({ purpose: 'order_fulfilment', source: 'person' as const, fields });
      // The demo policy collects user.name and user.contact.address from customers only.
      await rejects(vault.subjects.create(officer, { kinds: ['visitor'], data: write({ 'user.name': 'Val Visitor' }) }), 'category_not_collected', /does not collect "user.name" about subjects of kind visitor$/);
      const batch = await rejects(
        vault.subjects.createMany(officer, [{ kinds: ['customer'], data: write({ 'user.name': 'Cy Customer' }) }, { kinds: ['subscriber', 'visitor'], data: write({ 'user.contact.address': '1 Elm Street' }) }]),
        'batch_rejected',
      );
      assert.deepEqual(batch.details?.errors, [{ index: 1, code: 'category_not_collected', message: 'the policy does not collect "user.contact.address" about subjects of kind subscriber, visitor' }]);
      const subscriber = await vault.subjects.create(officer, { kinds: ['subscriber'] });
      await rejects(vault.subjects.writeData(officer, subscriber.id, write({ 'user.contact.address': '1 Elm Street' })), 'category_not_collected', /about subjects of kind subscriber/);
      assert.deepEqual({ subjects: await count('subjects'), fields: await count('subject_fields') }, { ...before, subjects: before.subjects + 1 }, 'no field was stored');
      // One of the subject's kinds is enough: a customer who also subscribed gives an address.
      const both = await vault.subjects.create(officer, { kinds: ['subscriber', 'customer'], data: write({ 'user.contact.address': '1 Elm Street' }) });
      assert.deepEqual(Object.keys((await vault.subjects.readData(officer, both.id, 'order_fulfilment')).fields), ['user.contact.address']);
      // Nor can a change of kinds leave behind data the new kinds would not be asked for.
      await rejects(vault.subjects.update(officer, both.id, { kinds: ['subscriber'] }), 'category_not_collected', /holds "user.contact.address", which the policy does not collect about subjects of kind subscriber/);
      const refused = await rejects(vault.subjects.updateMany(officer, [{ id: subscriber.id, kinds: ['visitor'] }, { id: both.id, kinds: ['visitor'] }]), 'batch_rejected');
      assert.deepEqual(
        (refused.details?.errors as Array<{ index: number; code: string }>).map(({ index, code }) => ({ index, code })),
        [{ index: 1, code: 'category_not_collected' }],
      );
      assert.deepEqual((await vault.subjects.get(both.id)).kinds.sort(), ['customer', 'subscriber'], 'the kinds did not change');
      assert.deepEqual((await vault.subjects.get(subscriber.id)).kinds, ['subscriber'], 'nothing of the batch was written');
      // Adding a kind, or replacing one that covers the data by another that does too, is fine.
      assert.deepEqual((await vault.subjects.update(officer, both.id, { kinds: ['customer'] })).kinds, ['customer']);
      assert.deepEqual((await vault.subjects.update(officer, subscriber.id, { kinds: ['visitor'] })).kinds, ['visitor']);
    });

    test('a value nested deeper than 32 levels is refused before anything reads it', async () => {
      const nested = (depth: number): unknown => JSON.parse('['.repeat(depth) + ']'.repeat(depth));
      const subject = await vault.subjects.create(officer, { kinds: ['customer'] });
      const before = await count('subject_fields');
      const write = (value: unknown) => vault.subjects.writeData(officer, subject.id, { purpose: 'order_fulfilment', source: 'person', fields: { 'user.name': 'Deep', 'user.contact.address': value } });
      await rejects(write(nested(20_000)), 'invalid_field_value', /^the value of "user.contact.address" nests objects and arrays more than 32 levels deep$/);
      await rejects(write({ lines: nested(32) }), 'invalid_field_value');
      await rejects(vault.subjects.create(officer, { kinds: ['customer'], data: { purpose: 'order_fulfilment', source: 'person', fields: { 'user.contact.address': nested(20_000) } } }), 'invalid_field_value');
      assert.equal(await count('subject_fields'), before, 'nothing was stored');
      await write(nested(32));
    });

    test('a partner is accepted only with source partner, never silently dropped', async () => {
      const subject = await vault.subjects.create(officer, { kinds: ['customer'] });
      const before = await count('subject_fields');
      for (const source of ['person', 'automatic', 'other_person', 'staff'] as const) {
        const error = await rejects(
          vault.subjects.writeData(officer, subject.id, { purpose: 'order_fulfilment', source, partner: 'payment_gateway', fields: { 'user.name': 'Jane Doe' } }),
          'unexpected_partner',
          new RegExp(`^"partner" is accepted only with source "partner", not "${source}"`),
        );
        assert.equal(error.details?.field, 'partner');
      }
      await rejects(vault.subjects.create(officer, { kinds: ['customer'], data: { purpose: 'order_fulfilment', source: 'person', partner: 'payment_gateway', fields: { 'user.name': 'Jane Doe' } } }), 'unexpected_partner');
      const batch = await rejects(vault.subjects.createMany(officer, [{ kinds: ['customer'], data: { purpose: 'order_fulfilment', source: 'person', partner: 'payment_gateway', fields: { 'user.name': 'Jane Doe' } } }]), 'batch_rejected');
      assert.deepEqual((batch.details?.errors as Array<{ code: string }>).map((item) => item.code), ['unexpected_partner']);
      assert.equal(await count('subject_fields'), before, 'nothing was stored');
      await vault.subjects.writeData(officer, subject.id, { purpose: 'order_fulfilment', source: 'partner', partner: 'payment_gateway', fields: { 'user.payment': { outcome: 'paid' } } });
      assert.equal((await vault.subjects.readData(officer, subject.id, 'order_fulfilment')).fields['user.payment']!.partner, 'payment_gateway');
    });

    test('an email address stored as a field is checked as an email identity is', async () => {
      const subject = await vault.subjects.create(officer, { kinds: ['customer'] });
      const before = await count('subject_fields');
      const write = (value: unknown) => vault.subjects.writeData(officer, subject.id, { purpose: 'account', source: 'person', fields: { 'user.name': 'Jane Doe', 'user.contact.email': value } });
      await rejects(write('not an email at all'), 'invalid_field_value', /^the value of "user.contact.email" is not an email address: expected an address such as name@example.com$/);
      await rejects(write('jane\u200b@example.com'), 'invalid_field_value', /invisible formatting characters/);
      await rejects(write(`${'a'.repeat(65)}@example.com`), 'invalid_field_value', /longer than 64 bytes/);
      await rejects(write({ address: 'jane@example.com' }), 'invalid_field_value', /is not an email address: it is not text$/);
      await rejects(vault.subjects.create(officer, { kinds: ['subscriber'], data: { purpose: 'marketing', source: 'person', fields: { 'user.contact.email': 'nobody-at-example' } } }), 'invalid_field_value');
      const batch = await rejects(vault.subjects.createMany(officer, [{ kinds: ['subscriber'], data: { purpose: 'marketing', source: 'person', fields: { 'user.contact.email': 'nobody-at-example' } } }]), 'batch_rejected');
      assert.deepEqual((batch.details?.errors as Array<{ code: string }>).map((item) => item.code), ['invalid_field_value']);
      assert.equal(await count('subject_fields'), before, 'nothing was stored');
      await write(' Jane.Doe@Bücher.de ');
    });

    test('identities are normalised, found through the blind index, and unique', async () => {
      const subject = await vault.subjects.create(officer, { kinds: ['customer'], identities: [{ kind: 'email', value: '  Ünïcode.Person@Example.ORG ' }, { kind: 'phone', value: '+1 (207) 555-0100' }] });
      const byEmail = await vault.subjects.lookup(officer, { kind: 'email', value: 'ünïcode.person@example.org' });
      assert.equal(byEmail.id, subject.id);
      // The same text in decomposed Unicode form is the same identity.
      const decomposed = await vault.subjects.lookup(officer, { kind: 'email', value: 'u\u0308ni\u0308code.person@example.org' });
      assert.equal(decomposed.id, subject.id);
      assert.equal((await vault.subjects.lookup(officer, { kind: 'phone', value: '+12075550100' })).id, subject.id);
      await rejects(vault.subjects.lookup(officer, { kind: 'email', value: 'nobody@example.org' }), 'subject_not_found');
      await rejects(vault.subjects.create(officer, { kinds: ['customer'], identities: [{ kind: 'email', value: 'UNICODE.person@example.org'.replace('UNICODE', 'Ünïcode') }] }), 'identity_taken');
      await rejects(vault.subjects.create(officer, { kinds: ['customer'], identities: [{ kind: 'email', value: 'not-an-email' }] }), 'invalid_identity');
      await rejects(vault.subjects.create(officer, { kinds: ['alien'] }), 'unknown_subject_kind');
    });

    test('an identity with invisible characters is refused; an email domain counts in its ASCII form; a local part holds 64 bytes', async () => {
      const email = (value: string) => ({ kinds: ['customer'], identities: [{ kind: 'email' as const, value }] });
      await vault.subjects.create(officer, email('zero.width@example.com'));
      const before = await count('subject_identities');
      for (const hidden of ['zero.width\u200b@example.com', '\u200dzero.width@example.com', 'zero.width@exam\u00adple.com', 'zero\u202e.width@example.com']) {
        await rejects(vault.subjects.create(officer, email(hidden)), 'invalid_identity', /^the email identity is not valid: it contains invisible formatting characters$/);
      }
      await rejects(vault.subjects.create(officer, { kinds: ['customer'], identities: [{ kind: 'user_id', value: 'u-1\u2060' }] }), 'invalid_identity', /invisible/);

      const idn = await vault.subjects.create(officer, email('user@Bücher.de'));
      await rejects(vault.subjects.create(officer, email('user@xn--bcher-kva.de')), 'identity_taken');
      assert.equal((await vault.subjects.lookup(officer, { kind: 'email', value: 'USER@XN--BCHER-KVA.DE' })).id, idn.id);
      assert.deepEqual(await vault.subjects.identities(officer, idn.id), [{ kind: 'email', value: 'user@xn--bcher-kva.de' }], 'kept in the form mail servers accept');

      await rejects(vault.subjects.create(officer, email(`${'a'.repeat(65)}@example.com`)), 'invalid_identity', /longer than 64 bytes/);
      await rejects(vault.subjects.create(officer, email(`${'ü'.repeat(33)}@example.com`)), 'invalid_identity', /longer than 64 bytes/);
      assert.equal(await count('subject_identities'), before + 1, 'only the address in Unicode was stored');
      assert.equal((await vault.subjects.create(officer, email(`${'a'.repeat(64)}@example.com`))).status, 'active');
    });

    test('nothing personal is stored in clear: not in fields, identities, or the audit log', async () => {
      await vault.subjects.create(officer, { ...jane(), identities: [{ kind: 'email', value: 'clear.text@example.com' }] });
      const fields = await vault.database.db.selectFrom('subject_fields').selectAll().execute();
      const identities = await vault.database.db.selectFrom('subject_identities').selectAll().execute();
      const audit = await sql<Record<string, unknown>>`select * from audit_entries`.execute(vault.database.db);
      const everything = JSON.stringify([fields, identities, audit.rows]);
      for (const secret of ['clear.text', 'Jane Doe', 'Elm Street', '555 0199', '5550199']) assert.ok(!everything.includes(secret), `${secret} found in storage`);
    });

    test('a ciphertext moved to another row, or altered, does not decrypt', async () => {
      const a = await vault.subjects.create(officer, { ...jane(), identities: [{ kind: 'email', value: 'a.moved@example.com' }] });
      const b = await vault.subjects.create(officer, { ...jane(), identities: [{ kind: 'email', value: 'b.moved@example.com' }] });
      const fieldOfA = await vault.database.db.selectFrom('subject_fields').select('value').where('subject_id', '=', a.id).where('category', '=', 'user.name').executeTakeFirstOrThrow();
      await vault.database.db.updateTable('subject_fields').set({ value: fieldOfA.value }).where('subject_id', '=', b.id).where('category', '=', 'user.name').execute();
      await rejects(vault.subjects.readData(officer, b.id, 'order_fulfilment'), 'data_integrity_failed');
      // Same subject, other category: bound to the category too.
      await vault.database.db.updateTable('subject_fields').set({ value: fieldOfA.value }).where('subject_id', '=', a.id).where('category', '=', 'user.contact.phone_number').execute();
      await rejects(vault.subjects.readData(officer, a.id, 'order_fulfilment'), 'data_integrity_failed');
      const c = await vault.subjects.create(officer, { ...jane(), identities: [{ kind: 'email', value: 'c.altered@example.com' }] });
      const field = await vault.database.db.selectFrom('subject_fields').select('value').where('subject_id', '=', c.id).where('category', '=', 'user.name').executeTakeFirstOrThrow();
      const flipped = field.value.slice(0, 20) + (field.value[20] === 'A' ? 'B' : 'A') + field.value.slice(21);
      await vault.database.db.updateTable('subject_fields').set({ value: flipped }).where('subject_id', '=', c.id).where('category', '=', 'user.name').execute();
      await rejects(vault.subjects.readData(officer, c.id, 'order_fulfilment'), 'data_integrity_failed');
    });

    test('support must justify a read, and the justification lands in the audit entry', async () => {
      const subject = await vault.subjects.create(officer, { ...jane(), identities: [{ kind: 'email', value: 'support.case@example.com' }] });
      await rejects(vault.subjects.readData(support, subject.id, 'order_fulfilment'), 'justification_required');
      await vault.subjects.readData(support, subject.id, 'order_fulfilment', 'ticket 4512: delivery address check');
      const { entries } = await vault.audit.list({ targetId: subject.id, limit: 50 });
      const read = entries.find((entry) => entry.action === 'data.read' && entry.actor.id === 'stf_support');
      assert.ok(read, 'the read is audited');
      assert.equal(read.purpose, 'order_fulfilment');
      assert.equal(read.details.justification, 'ticket 4512: delivery address check');
    });

    test('an API key reads only for the purposes it is scoped to', async () => {
      const subject = await vault.subjects.create(shopKey, { ...jane(), identities: [{ kind: 'email', value: 'scoped@example.com' }] });
      await vault.subjects.readData(shopKey, subject.id, 'order_fulfilment');
      const error = await rejects(vault.subjects.readData(shopKey, subject.id, 'analytics'), 'purpose_not_permitted');
      assert.equal(error.details?.reason, 'api_key_scope');
    });

    test('an API key writes only for the purposes it is scoped to: on create and in a batch, nothing stored', async () => {
      const before = { subjects: await count('subjects'), fields: await count('subject_fields') };
      const marketing = (email: string) => ({ kinds: ['customer'], identities: [{ kind: 'email' as const, value: email }], data: { purpose: 'marketing', source: 'person' as const, fields: { 'user.name': 'Jane Doe' } } });
      const single = await rejects(vault.subjects.create(shopKey, marketing('scope.create@example.com')), 'purpose_not_permitted', /may not use purpose "marketing"/);
      assert.equal(single.details?.reason, 'api_key_scope');
      const batch = await rejects(vault.subjects.createMany(shopKey, [{ kinds: ['customer'] }, marketing('scope.batch@example.com')]), 'purpose_not_permitted', /may not use purpose "marketing"/);
      assert.equal(batch.details?.reason, 'api_key_scope');
      assert.deepEqual({ subjects: await count('subjects'), fields: await count('subject_fields') }, before, 'nothing was stored');
      // Staff, and keys scoped to every purpose, are not limited by a key's scope.
      assert.equal((await vault.subjects.create(officer, marketing('scope.officer@example.com'))).status, 'active');
    });

    test('a batch is all or nothing, with every failing item named', async () => {
      const before = await count('subjects');
      const items = [0, 1, 2].map((index) => ({ kinds: ['customer'], identities: [{ kind: 'email' as const, value: `batch${index}@example.com` }] }));
      const error = await rejects(
        vault.subjects.createMany(officer, [...items, { kinds: ['customer'], identities: [{ kind: 'email', value: 'batch1@example.com' }] }, { kinds: ['nobody'] }]),
        'batch_rejected',
      );
      assert.deepEqual(
        (error.details?.errors as Array<{ index: number; code: string }>).map((item) => [item.index, item.code]),
        [[3, 'identity_taken'], [4, 'unknown_subject_kind']],
      );
      assert.equal(await count('subjects'), before, 'nothing was written');
      const created = await vault.subjects.createMany(officer, items);
      assert.equal(created.length, 3);
      const taken = await rejects(vault.subjects.createMany(officer, [{ kinds: ['customer'], identities: [{ kind: 'email', value: 'fresh@example.com' }] }, items[1]!]), 'batch_rejected');
      assert.deepEqual((taken.details?.errors as Array<{ index: number }>).map((item) => item.index), [1]);
    });

    test('a rejected batch lists every failing item at once: invalid ones, taken identities and repeats, by their own index', async () => {
      await vault.subjects.create(officer, { kinds: ['customer'], identities: [{ kind: 'email', value: 'all.errors.held@example.com' }, { kind: 'phone', value: '+1 207 555 0111' }] });
      const before = await count('subjects');
      const error = await rejects(
        vault.subjects.createMany(officer, [
          { kinds: ['customer'], identities: [{ kind: 'email', value: 'all.errors.held@example.com' }] },
          { kinds: ['alien'] },
          { kinds: ['customer'], identities: [{ kind: 'email', value: 'all.errors.twice@example.com' }] },
          { kinds: ['customer'], identities: [{ kind: 'email', value: 'all.errors.twice@example.com' }] },
          { kinds: ['customer'], identities: [{ kind: 'phone', value: '+12075550111' }] },
        ]),
        'batch_rejected',
        /^4 item\(s\)/,
      );
      assert.deepEqual(
        (error.details?.errors as Array<{ index: number; code: string }>).map((item) => [item.index, item.code]),
        [[0, 'identity_taken'], [1, 'unknown_subject_kind'], [3, 'identity_taken'], [4, 'identity_taken']],
      );
      assert.equal(await count('subjects'), before, 'nothing was written');
    });

    test('erasure destroys the key: a copy of the database taken before yields no plaintext', async () => {
      const subject = await vault.subjects.create(officer, { ...jane(), identities: [{ kind: 'email', value: 'erase.me@example.com' }] });
      // The "backup": every row of the main database that holds this subject's data.
      const backupFields = await vault.database.db.selectFrom('subject_fields').selectAll().where('subject_id', '=', subject.id).execute();
      const backupIdentities = await vault.database.db.selectFrom('subject_identities').selectAll().where('subject_id', '=', subject.id).execute();
      assert.ok(backupFields.length > 0 && backupIdentities.length > 0);
      assert.ok(await vault.keystore.get(subject.id), 'the key exists before');
      const { wrapped } = await vault.keystoreDatabase.db.selectFrom('subject_keys').select('wrapped').where('subject_id', '=', subject.id).executeTakeFirstOrThrow();

      const erased = await vault.subjects.erase(officer, subject.id);
      assert.equal(erased.status, 'erased');
      assert.deepEqual(erased.kinds, []);
      await rejects(vault.subjects.readData(officer, subject.id, 'order_fulfilment'), 'subject_erased');
      await rejects(vault.subjects.lookup(officer, { kind: 'email', value: 'erase.me@example.com' }), 'subject_not_found');
      assert.equal(await vault.keystore.get(subject.id), undefined, 'the data key is gone');
      if (dialect === 'sqlite') {
        // Gone from the key store's files too, not only from its table: with the master key, a
        // copy of keys.db or of its write-ahead log would otherwise unwrap it.
        const file = vault.keys.url.slice('sqlite:'.length);
        for (const copy of [file, `${file}-wal`]) {
          const bytes = existsSync(copy) ? readFileSync(copy) : Buffer.alloc(0);
          assert.equal(bytes.indexOf(wrapped), -1, `the wrapped key is still in ${path.basename(copy)}`);
        }
      }

      // Restore the backup rows into the live database: still nothing can be read.
      await vault.database.db.insertInto('subject_fields').values(backupFields).execute();
      await vault.database.db.updateTable('subjects').set({ status: 'active' }).where('id', '=', subject.id).execute();
      await rejects(vault.subjects.readData(officer, subject.id, 'order_fulfilment'), 'subject_erased');
      // And no key anywhere opens the ciphertexts: the only one was destroyed.
      assert.ok(!JSON.stringify(backupFields).includes('Jane'));
      const again = await vault.subjects.erase(officer, subject.id);
      assert.equal(again.status, 'erased', 'erasing twice is harmless');
    });

    test('a data key remembered by one process opens nothing once another process erased the subject', async () => {
      const subject = await vault.subjects.create(officer, { ...jane(), identities: [{ kind: 'email', value: 'cached.key@example.com' }] });
      assert.ok(Object.keys((await vault.subjects.readData(officer, subject.id, 'order_fulfilment')).fields).length > 0);
      const other = await createTestVault(dialect, { sharing: vault });
      try {
        await other.subjects.erase(officer, subject.id);
      } finally {
        await other.close();
      }
      await rejects(vault.subjects.readData(officer, subject.id, 'order_fulfilment'), 'subject_erased');
    });

    test('values opened in one process follow changes made by another: corrected, removed, restricted', async () => {
      const subject = await vault.subjects.create(officer, { ...jane(), identities: [{ kind: 'email', value: 'opened.values@example.com' }] });
      const first = await vault.subjects.readData(officer, subject.id, 'order_fulfilment');
      assert.equal(first.fields['user.name']!.value, 'Jane Doe');
      assert.ok(Object.isFrozen(first.fields['user.contact.address']!.value), 'shared opened values cannot be altered by a caller');
      const other = await createTestVault(dialect, { sharing: vault, clock: manualClock('2026-03-02T08:00:00Z') });
      try {
        await other.subjects.writeData(officer, subject.id, { purpose: 'order_fulfilment', source: 'person', fields: { 'user.name': 'Jane Roe' } });
        const corrected = await vault.subjects.readData(officer, subject.id, 'order_fulfilment');
        assert.equal(corrected.fields['user.name']!.value, 'Jane Roe');
        assert.equal(corrected.fields['user.name']!.updatedAt, '2026-03-02T08:00:00.000Z', 'the field\'s record is the new one, not the remembered one');
        assert.deepEqual(corrected.fields['user.contact.address']!.value, { street: '1 Elm Street', city: 'Portland' });

        await other.database.db.deleteFrom('subject_fields').where('subject_id', '=', subject.id).where('category', '=', 'user.contact.phone_number').execute();
        assert.equal((await vault.subjects.readData(officer, subject.id, 'order_fulfilment')).fields['user.contact.phone_number'], undefined, 'a removed field is gone at once');

        await other.subjects.setRestricted(officer, subject.id, true);
        await rejects(vault.subjects.readData(officer, subject.id, 'order_fulfilment'), 'purpose_not_permitted');
      } finally {
        await other.close();
      }
    });

    test('the audit chain records every read and write, and verifies', async () => {
      const subject = await vault.subjects.create(officer, { ...jane(), identities: [{ kind: 'email', value: 'audited@example.com' }] });
      await vault.subjects.readData(officer, subject.id, 'order_fulfilment');
      await vault.subjects.writeData(officer, subject.id, { purpose: 'order_fulfilment', source: 'person', fields: { 'user.name': 'Jane Q. Doe' } });
      await vault.subjects.close(officer, subject.id);
      await vault.subjects.erase(officer, subject.id);
      const actions = (await vault.audit.list({ targetId: subject.id, limit: 50 })).entries.map((entry) => entry.action);
      assert.deepEqual(actions, ['subject.created', 'data.read', 'data.written', 'subject.closed', 'subject.erased']);
      const report = await vault.audit.verify();
      assert.equal(report.ok, true, JSON.stringify(report.firstProblem));
    });
  });
}

describe('the vault with a policy that collects dates of birth', () => {
  test('the age gate refuses a person below the minimum age and stores nothing', async () => {
    const text = DEMO.replace(
      'categories: [user.name, user.contact.email, user.account.username, user.authorization.credentials]',
      'categories: [user.name, user.contact.email, user.account.username, user.authorization.credentials, user.demographic.date_of_birth]',
    )
      .replace('categories: [user.name, user.contact.email, user.account, user.authorization]\n', 'categories: [user.name, user.contact.email, user.account, user.authorization, user.demographic.date_of_birth]\n')
      .replace('categories: [user.name, user.contact, user.account, user.authorization]\n    duration: 30 days', 'categories: [user.name, user.contact, user.account, user.authorization, user.demographic]\n    duration: 30 days');
    const policy = requirePolicy(loadPolicyText(text, 'dob.yaml'));
    const vault = await createTestVault('sqlite', { policy });
    try {
      const child = { kinds: ['customer'], identities: [{ kind: 'email' as const, value: 'kid@example.com' }], data: { purpose: 'account', source: 'person' as const, fields: { 'user.name': 'Kid', 'user.demographic.date_of_birth': '2015-06-01' } } };
      await rejects(vault.subjects.create(officer, child), 'below_minimum_age');
      assert.equal(Number((await vault.database.db.selectFrom('subjects').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n), 0);
      // Thirteen on the day: accepted (the clock says 2026-03-01).
      const teen = await vault.subjects.create(officer, { ...child, identities: [{ kind: 'email', value: 'teen@example.com' }], data: { ...child.data, fields: { 'user.demographic.date_of_birth': '2013-03-01' } } });
      assert.equal(teen.status, 'active');
      await rejects(vault.subjects.create(officer, { ...child, data: { ...child.data, fields: { 'user.demographic.date_of_birth': '2013-02-30' } } }), 'invalid_field_value');
    } finally {
      await vault.close();
    }
  });
});

for (const dialect of testDialects()) {
  describe(`the age gate on ${dialect}, with a policy that collects demographics`, () => {
    let vault: TestVault;
    before(async () => {
      const text = DEMO.replace(
        'categories: [user.name, user.contact.email, user.account.username, user.authorization.credentials]',
        'categories: [user.name, user.contact.email, user.account.username, user.authorization.credentials, user.demographic]',
      )
        .replace('categories: [user.name, user.contact.email, user.account, user.authorization]\n', 'categories: [user.name, user.contact.email, user.account, user.authorization, user.demographic]\n')
        .replace('categories: [user.name, user.contact, user.account, user.authorization]\n    duration: 30 days', 'categories: [user.name, user.contact, user.account, user.authorization, user.demographic]\n    duration: 30 days');
      // The clock says 2026-03-01; the demo policy's minimum age is 13.
      vault = await createTestVault(dialect, { policy: requirePolicy(loadPolicyText(text, 'demographics.yaml')) });
    });
    after(() => vault.close());

    const fieldCount = async () => Number((await vault.database.db.selectFrom('subject_fields').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    const write = (fields: Record<string, unknown>) => ({ purpose: 'account', source: 'person' as const, fields });

    test('finds a birth date or an age wherever the write carries it, and stores nothing', async () => {
      const subject = await vault.subjects.create(officer, { kinds: ['customer'] });
      const before = await fieldCount();
      await rejects(vault.subjects.create(officer, { kinds: ['customer'], data: write({ 'user.demographic': { date_of_birth: '2020-05-01' } }) }), 'below_minimum_age', /^"user.demographic" \(key dateofbirth\) shows/);
      const refused: Array<Record<string, unknown>> = [
        { 'user.demographic.age_range': '0-9' },
        { 'user.demographic.age_range': 'under 13' },
        { 'user.demographic': { age: 9 } },
        { 'user.demographic': { profile: { DOB: '2019-01-01' } } },
        { 'user.demographic': { 'birth-date': '2014-03-02' } },
        { 'user.demographic': { birthdate: ['1980-01-01', '2016-01-01'] } },
        { 'user.demographic': { birth_year: 2016 } },
        { 'user.demographic': { AgeRange: [0, 9] } },
      ];
      for (const fields of refused) await rejects(vault.subjects.writeData(officer, subject.id, write(fields)), 'below_minimum_age', undefined);
      await rejects(vault.subjects.writeData(officer, subject.id, write({ 'user.demographic': { birthDate: '01/05/2020' } })), 'invalid_field_value', /date of birth in "user.demographic" \(key birthdate\) must be a past date written YYYY-MM-DD/);
      const batch = await rejects(vault.subjects.createMany(officer, [{ kinds: ['customer'] }, { kinds: ['customer'], data: write({ 'user.demographic': { dob: '2020-05-01' } }) }]), 'batch_rejected');
      assert.deepEqual((batch.details?.errors as Array<{ index: number; code: string }>).map((item) => [item.index, item.code]), [[1, 'below_minimum_age']]);
      assert.equal(await fieldCount(), before, 'nothing was stored');

      // What shows the minimum age is reached, or says nothing of it, goes through.
      await vault.subjects.create(officer, { kinds: ['customer'], data: write({ 'user.demographic': { date_of_birth: '2013-03-01', age_range: '10-14', gender: 'f' } }) });
      for (const range of ['13+', '13', 'prefer not to say', '30-39 years']) await vault.subjects.writeData(officer, subject.id, write({ 'user.demographic.age_range': range }));
      await vault.subjects.writeData(officer, subject.id, write({ 'user.demographic': { birth_year: 2013, age: null } }));
    });
  });
}

describe('master key rotation', () => {
  test('re-wraps every data key without touching field ciphertexts; the old key can then go', async () => {
    const vault = await createTestVault('sqlite');
    try {
      const ids: string[] = [];
      for (let index = 0; index < 25; index++) ids.push((await vault.subjects.create(officer, { ...jane(), identities: [{ kind: 'email', value: `rotate${index}@example.com` }] })).id);
      const before = await vault.database.db.selectFrom('subject_fields').select(['subject_id', 'category', 'value']).orderBy('subject_id').orderBy('category').execute();

      const newMaster = randomBytes(32);
      // Without the old key the keyring cannot be opened: the operator must supply it.
      await rejects(Keyring.open(vault.database, newMaster, [], vault.clock), 'master_key_invalid');
      const keyring = await Keyring.open(vault.database, newMaster, [vault.masterKey], vault.clock);
      const keystore = new KeyStore(vault.keystoreDatabase, keyring);
      assert.equal(await keystore.countToRotate(), 25);
      // Interrupted after one batch, resumed from the start: it completes the rest.
      assert.deepEqual((await keystore.rotateBatch(10)).rotated, 10);
      assert.equal(await keystore.countToRotate(), 15);
      assert.deepEqual(await keystore.rotateAll(10), { rotated: 15, unreadable: [], damaged: [] });
      assert.equal(await keyring.rewrapSecrets(vault.database), 3);
      assert.equal(await keystore.countToRotate(), 0);

      const after = await vault.database.db.selectFrom('subject_fields').select(['subject_id', 'category', 'value']).orderBy('subject_id').orderBy('category').execute();
      assert.deepEqual(after, before, 'no field was re-encrypted');
      // The new key alone now opens everything, and blind indexes still find people.
      const fresh = await Keyring.open(vault.database, newMaster, [], vault.clock);
      const subjects = new SubjectsService({ database: vault.database, keystore: new KeyStore(vault.keystoreDatabase, fresh), keyring: fresh, policy: vault.policy, audit: vault.audit, consent: new PolicyDefaultConsentGate(vault.policy), clock: vault.clock });
      const read = await subjects.readData(officer, ids[7]!, 'order_fulfilment');
      assert.equal(read.fields['user.name']!.value, 'Jane Doe');
      assert.equal((await subjects.lookup(officer, { kind: 'email', value: 'rotate3@example.com' })).id, ids[3]);
    } finally {
      await vault.close();
    }
  });
});

describe('erasure against a real file backup', () => {
  test('a copy of the SQLite database file taken before the erasure yields no plaintext', async () => {
    const vault = await createTestVault('sqlite');
    try {
      const subject = await vault.subjects.create(officer, { ...jane(), identities: [{ kind: 'email', value: 'file.backup@example.com' }] });
      const file = vault.main.url.slice('sqlite:'.length);
      await sql`pragma wal_checkpoint(TRUNCATE)`.execute(vault.database.db);
      const backup = path.join(path.dirname(file), 'backup.db');
      copyFileSync(file, backup);
      await vault.subjects.erase(officer, subject.id);

      // Restore the backup as the engine's database, with the live key store.
      const restored = openDatabase(`sqlite:${backup}`);
      try {
        await migrate(restored);
        const keyring = await Keyring.open(restored, vault.masterKey, [], vault.clock);
        const subjects = new SubjectsService({ database: restored, keystore: new KeyStore(vault.keystoreDatabase, keyring), keyring, policy: vault.policy, audit: vault.audit, consent: new PolicyDefaultConsentGate(vault.policy), clock: vault.clock });
        assert.equal((await subjects.get(subject.id)).status, 'active', 'the backup still holds the subject');
        await rejects(subjects.readData(officer, subject.id, 'order_fulfilment'), 'subject_erased');
        assert.ok(!readFileSync(backup).includes(Buffer.from('Jane Doe')), 'and its file holds no plaintext');
      } finally {
        await restored.close();
      }
    } finally {
      await vault.close();
    }
  });
});
