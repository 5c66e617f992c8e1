import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { renameSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { strFromU8, unzipSync } from 'fflate';
import { createTestDatabase, temporaryDirectory, testDialects, type TestDatabase, type TestDialect } from '../../test/support/databases.js';
import { manualClock, type ManualClock } from '../core/clock.js';
import { loadConfig } from '../core/config.js';
import { PledgeError, type ErrorCode } from '../core/errors.js';
import { createLogger } from '../core/logger.js';
import { createEngine, type Engine } from '../engine.js';
import { loadPolicyFile, loadPolicyText, requirePolicy } from '../policy/policy.load.js';
import type { Actor } from '../staff/permissions.js';
import { MAX_CODE_ATTEMPTS, MAX_CODE_SENDS, type RequestView } from './requests.service.js';
import { createShopDatabase, readShop, RecordingNotifier, ShopHandler } from './requests.test-support.js';
import { csvCell } from './requests.packages.js';
import { VaultHandler } from './requests.systems.js';
import { readFileSync } from 'node:fs';
import { rejects } from '../../test/support/errors.js';

const officer: Actor = { type: 'staff', id: 'stf_officer', role: 'privacy_officer' };


interface Harness {
  engine: Engine;
  clock: ManualClock;
  notifier: RecordingNotifier;
  shop: ShopHandler;
  shopFile: string;
  close(): Promise<void>;
}

async function harness(dialect: TestDialect, policyText?: string): Promise<Harness> {
  const main: TestDatabase = await createTestDatabase(dialect);
  const keys: TestDatabase = await createTestDatabase(dialect);
  const directory = temporaryDirectory('pledge-requests-');
  const shopFile = path.join(directory.path, 'shop.db');
  createShopDatabase(shopFile, [
    { email: 'jane.doe@example.com', name: 'Jane Doe', phone: '+12075550199', invoices: [{ amount: 4200, card: '4242' }, { amount: 1999, card: '4242' }] },
    { email: 'sam@example.com', name: 'Sam Roe', phone: '+12075550100', invoices: [{ amount: 500, card: '1111' }] },
  ]);
  const clock = manualClock('2026-03-02T12:00:00Z');
  const notifier = new RecordingNotifier();
  const shop = new ShopHandler(shopFile);
  const policy = policyText ? requirePolicy(loadPolicyText(policyText, 'pledge.yaml')) : requirePolicy(loadPolicyFile(path.resolve('examples/demo/pledge.yaml')));
  const { config } = loadConfig({ PLEDGE_MASTER_KEY: randomBytes(32).toString('hex'), PLEDGE_KEYSTORE_URL: keys.url }, { dataDir: directory.path, databaseUrl: main.url, publicUrl: 'https://privacy.example.com' });
  const engine = await createEngine(config, {
    policy,
    clock,
    logger: createLogger('silent'),
    requestNotifier: notifier,
    jobs: { backoffMs: 1000, maxBackoffMs: 5000, defaultMaxAttempts: 4 },
    requestSystems: (systems) => systems.register(shop),
  });
  return {
    engine,
    clock,
    notifier,
    shop,
    shopFile,
    async close() {
      await engine.close();
      await main.cleanup();
      await keys.cleanup();
      directory.remove();
    },
  };
}

const jane = {
  kinds: ['customer'],
  identities: [{ kind: 'email' as const, value: 'Jane.Doe@example.com' }],
  data: { purpose: 'order_fulfilment', source: 'person' as const, fields: { 'user.name': 'Jane Doe', 'user.contact.address': { city: 'Portland' }, 'user.contact.phone_number': '+1 207 555 0199' } },
};

for (const dialect of testDialects()) {
  describe(`data-subject requests on ${dialect}`, () => {
    let h: Harness;
    before(async () => {
      h = await harness(dialect);
    });
    after(() => h.close());

    const audit = () => h.engine.database.db.selectFrom('audit_entries').select(['action', 'target_id', 'details']).orderBy('seq').execute();

    const actions = async (requestId: string) => (await audit()).filter((entry) => entry.target_id === requestId).map((entry) => entry.action);

    async function verified(type: RequestView['type'], email: string, extra: Partial<Parameters<Engine['requests']['create']>[1]> = {}): Promise<RequestView> {
      const created = await h.engine.requests.create(officer, { type, identities: [{ kind: 'email', value: email }], ...extra });
      return h.engine.requests.verify(officer, created.id, h.notifier.lastCode(created.id)!);
    }

    test('lifecycle: a code is mailed, verified, approved, run to completion; every step audited', async () => {
      await h.engine.subjects.create(officer, jane);
      const created = await h.engine.requests.create(officer, { type: 'erasure', identities: [{ kind: 'email', value: ' JANE.DOE@example.com ' }], channel: 'email' });
      assert.equal(created.status, 'identity_unverified');
      assert.equal(created.verified, false);
      assert.deepEqual(created.identityKinds, ['email']);
      assert.ok(!JSON.stringify(created).includes('jane'), 'no identity value in the view');
      const sent = h.notifier.codes.filter((entry) => entry.requestId === created.id);
      assert.equal(sent.length, 1);
      assert.match(sent[0]!.code, /^\d{6}$/);
      assert.equal(sent[0]!.address, 'jane.doe@example.com');
      // The code is stored only as a keyed hash.
      const stored = await h.engine.database.db.selectFrom('requests').selectAll().where('id', '=', created.id).executeTakeFirstOrThrow();
      assert.ok(!JSON.stringify(stored).includes(sent[0]!.code));
      assert.ok(!JSON.stringify(stored).includes('jane'));

      await rejects(h.engine.requests.approve(officer, created.id), 'invalid_request_transition');
      const pending = await h.engine.requests.verify(officer, created.id, sent[0]!.code);
      assert.equal(pending.status, 'pending');
      assert.equal(pending.verification, 'email_code');
      await rejects(h.engine.requests.run(officer, created.id), 'invalid_request_transition');
      const approved = await h.engine.requests.approve(officer, created.id);
      assert.equal(approved.status, 'approved');
      const running = await h.engine.requests.run(officer, created.id);
      assert.equal(running.status, 'in_progress');
      assert.deepEqual(running.tasks.map((task) => [task.datastore, task.state]), [['vault', 'pending'], ['shop', 'pending']]);
      await h.engine.jobs.runDue();
      const done = await h.engine.requests.get(created.id);
      assert.equal(done.status, 'completed');
      assert.deepEqual(done.tasks.map((task) => [task.datastore, task.state, task.attempts]), [['vault', 'done', 1], ['shop', 'done', 1]]);
      await rejects(h.engine.requests.cancel(officer, created.id, 'too late'), 'invalid_request_transition');
      assert.deepEqual(await actions(created.id), ['request.created', 'request.verified', 'request.approved', 'request.in_progress', 'request.task_completed', 'request.task_completed', 'request.completed']);
    });

    test('erasure: the vault keeps only what a legal exception keeps (restricted), the shop deletes and anonymises, and the result lists what was kept', async () => {
      const subject = await h.engine.subjects.create(officer, { kinds: ['customer'], identities: [{ kind: 'email', value: 'sam@example.com' }], data: { purpose: 'order_fulfilment', source: 'person', fields: { 'user.name': 'Sam Roe' } } });
      await h.engine.subjects.writeData(officer, subject.id, { purpose: 'order_fulfilment', source: 'partner', partner: 'payment_gateway', fields: { 'user.payment': { last4: '1111' } } });
      const request = await verified('erasure', 'sam@example.com');
      await h.engine.requests.approve(officer, request.id);

      const preview = await h.engine.requests.dryRun(officer, request.id);
      const vaultPreview = preview.datastores.vault as { changed: Array<{ collection: string; fields: string[]; action: string }>; kept: Array<{ fields: string[]; exception: string }> };
      assert.deepEqual(vaultPreview.kept.map((kept) => kept.exception), ['tax_records']);
      assert.deepEqual(vaultPreview.changed.find((change) => change.collection === 'profile')?.fields, ['user.name']);
      const shopPreview = preview.datastores.shop as { changed: Array<{ collection: string; action: string }>; kept: unknown[] };
      assert.deepEqual(shopPreview.changed.map((change) => `${change.collection}:${change.action}`), ['invoices:update', 'customers:delete']);
      // The dry run changed nothing.
      assert.equal(readShop(h.shopFile).customers.filter((customer) => customer.email === 'sam@example.com').length, 1);
      assert.equal((await h.engine.subjects.heldCategories(subject.id)).length, 2);

      await h.engine.requests.run(officer, request.id);
      await h.engine.jobs.runDue();
      const done = await h.engine.requests.get(request.id);
      assert.equal(done.status, 'completed');
      const vaultSummary = done.tasks.find((task) => task.datastore === 'vault')!.summary as { kept: Array<{ exception: string; fields: string[] }> };
      assert.equal(vaultSummary.kept[0]!.exception, 'tax_records');
      const after = await h.engine.subjects.get(subject.id);
      assert.equal(after.restricted, true);
      assert.deepEqual((await h.engine.subjects.heldCategories(subject.id)).map((field) => field.category), ['user.payment']);
      await rejects(h.engine.subjects.lookup(officer, { kind: 'email', value: 'sam@example.com' }), 'subject_not_found');
      const shop = readShop(h.shopFile);
      assert.equal(shop.customers.some((customer) => customer.email === 'sam@example.com'), false);
      assert.ok(shop.invoices.some((invoice) => invoice.card_last4 === '1111' && invoice.customer_id === null), 'the invoice is kept, without the customer');
      // Found data is not kept once the request is done.
      const outputs = await h.engine.database.db.selectFrom('request_tasks').select('output').where('request_id', '=', request.id).execute();
      assert.ok(outputs.every((row) => row.output === null));
    });

    test('a subject under a legal hold is not erased: processing is restricted and the result names the hold', async () => {
      const subject = await h.engine.subjects.create(officer, { kinds: ['customer'], identities: [{ kind: 'email', value: 'held@example.com' }], data: { purpose: 'order_fulfilment', source: 'person', fields: { 'user.name': 'Held Person' } } });
      await h.engine.retention.placeHold(officer, subject.id, { reason: 'Litigation 2026-17' });
      const request = await verified('erasure', 'held@example.com');
      await h.engine.requests.approve(officer, request.id);
      const preview = (await h.engine.requests.dryRun(officer, request.id)).datastores.vault as { changed: unknown[]; kept: Array<{ exception: string; fields: string[] }> };
      assert.deepEqual(preview.changed, []);
      assert.deepEqual(preview.kept.map((kept) => [kept.exception, kept.fields]), [['legal_hold', ['*']]]);
      assert.equal((await h.engine.subjects.get(subject.id)).restricted, false, 'a dry run changes nothing');
      await h.engine.requests.run(officer, request.id);
      await h.engine.jobs.runDue();
      assert.equal((await h.engine.requests.get(request.id)).status, 'completed');
      const after = await h.engine.subjects.get(subject.id);
      assert.equal(after.status, 'active');
      assert.equal(after.restricted, true);
      assert.ok(await h.engine.keystore.get(subject.id), 'the data key is kept');
      assert.equal((await h.engine.subjects.lookup(officer, { kind: 'email', value: 'held@example.com' })).id, subject.id);
      // Nor can staff erase the subject directly while the hold stands.
      await rejects(h.engine.subjects.erase(officer, subject.id), 'subject_on_hold');
    });

    test('no account-existence oracle: an unknown identity is answered exactly like a known one', async () => {
      await h.engine.subjects.create(officer, { kinds: ['customer'], identities: [{ kind: 'email', value: 'known@example.com' }] });
      const before = h.notifier.codes.length;
      const known = await h.engine.requests.create(officer, { type: 'access', identities: [{ kind: 'email', value: 'known@example.com' }] });
      const unknown = await h.engine.requests.create(officer, { type: 'access', identities: [{ kind: 'email', value: 'nobody@example.com' }] });
      const shape = (view: RequestView) => JSON.stringify({ ...view, id: 'x', createdAt: 'x', updatedAt: 'x', receivedAt: 'x' });
      assert.equal(shape(known), shape(unknown));
      assert.equal(h.notifier.codes.length - before, 2, 'both get a code');
      for (const view of [known, unknown]) {
        await h.engine.requests.verify(officer, view.id, h.notifier.lastCode(view.id)!);
        await h.engine.requests.approve(officer, view.id);
        await h.engine.requests.run(officer, view.id);
      }
      await h.engine.jobs.runDue();
      const [a, b] = [await h.engine.requests.get(known.id), await h.engine.requests.get(unknown.id)];
      assert.equal(a.status, 'completed');
      assert.equal(b.status, 'completed');
      const personNotices = (id: string) => h.notifier.notices.filter((notice) => notice.requestId === id).map((notice) => `${notice.event}:${notice.to}`);
      assert.deepEqual(personNotices(known.id), personNotices(unknown.id));
      assert.deepEqual(a.packages.map((item) => item.format), b.packages.map((item) => item.format));
    });

    test('verification: wrong codes are counted and lock, codes expire, resends are limited, staff may override with a reason', async () => {
      const request = await h.engine.requests.create(officer, { type: 'access', identities: [{ kind: 'email', value: 'codes@example.com' }] });
      const code = h.notifier.lastCode(request.id)!;
      const wrong = code === '000000' ? '000001' : '000000';
      const first = await rejects(h.engine.requests.verify(officer, request.id, wrong), 'verification_code_invalid');
      assert.equal(first.details?.attemptsLeft, MAX_CODE_ATTEMPTS - 1);
      for (let attempt = 2; attempt < MAX_CODE_ATTEMPTS; attempt++) await rejects(h.engine.requests.verify(officer, request.id, wrong), 'verification_code_invalid');
      await rejects(h.engine.requests.verify(officer, request.id, wrong), 'verification_locked');
      await rejects(h.engine.requests.verify(officer, request.id, code), 'verification_locked');

      await h.engine.requests.resend(officer, request.id);
      const second = h.notifier.lastCode(request.id)!;
      h.clock.advance(16 * 60_000);
      await rejects(h.engine.requests.verify(officer, request.id, second), 'verification_code_expired');
      for (let sends = 2; sends < MAX_CODE_SENDS; sends++) await h.engine.requests.resend(officer, request.id);
      await rejects(h.engine.requests.resend(officer, request.id), 'verification_resend_limit');
      assert.equal(h.notifier.codes.filter((entry) => entry.requestId === request.id).length, MAX_CODE_SENDS);

      await rejects(h.engine.requests.overrideVerification(officer, request.id, '  '), 'reason_required');
      const overridden = await h.engine.requests.overrideVerification(officer, request.id, 'Signed letter with ID copy received');
      assert.equal(overridden.status, 'pending');
      assert.equal(overridden.verification, 'staff_override');
      const entries = (await audit()).filter((entry) => entry.target_id === request.id && entry.action === 'request.verified');
      assert.match(entries[0]!.details ?? '', /staff_override/);
      assert.match(entries[0]!.details ?? '', /Signed letter/);
      h.clock.advance(-16 * 60_000);
    });

    test('a signed-in person is verified by the session; a right without verification starts pending', async () => {
      const person = await h.engine.requests.create({ type: 'subject', id: 'sub_00000000000000000000000000' }, { type: 'access', identities: [{ kind: 'email', value: 'session@example.com' }] });
      assert.equal(person.status, 'pending');
      assert.equal(person.verification, 'signed_in');
      assert.equal(person.channel, 'privacy_center');
      assert.equal(h.notifier.lastCode(person.id), undefined, 'no code is sent');
    });

    test('deadlines: from the received date, extended once with a reason, overdue flagged and listed, reminders sent once', async () => {
      const received = '2026-02-10T09:00:00.000Z';
      const request = await h.engine.requests.create(officer, { type: 'access', identities: [{ kind: 'email', value: 'letter@example.com' }], channel: 'postal', receivedAt: received });
      assert.equal(request.receivedAt, received);
      assert.equal(request.dueAt, '2026-03-12T23:59:59.999Z');
      assert.equal(request.overdue, false);
      await rejects(h.engine.requests.create(officer, { type: 'access', identities: [{ kind: 'email', value: 'letter@example.com' }], receivedAt: '2027-01-01T00:00:00Z' }), 'invalid_request_details');

      // Withdrawing consent has 2 business days under the us_federal calendar.
      const withdraw = await h.engine.requests.create(officer, { type: 'withdraw_consent', identities: [{ kind: 'email', value: 'letter@example.com' }], receivedAt: '2026-02-13T10:00:00Z' });
      // Friday the 13th → Monday 16 is Washington's Birthday → Tue 17, Wed 18.
      assert.equal(withdraw.dueAt, '2026-02-18T23:59:59.999Z');
      assert.equal(withdraw.overdue, true);
      await rejects(h.engine.requests.extend(officer, withdraw.id, 'busy'), 'extension_not_allowed');

      const reminded = (id: string) => h.notifier.notices.filter((notice) => notice.requestId === id && notice.event === 'deadline_approaching' && notice.to === 'staff').length;
      assert.ok((await h.engine.requests.sweep()).reminded >= 1);
      assert.deepEqual([reminded(withdraw.id), reminded(request.id)], [1, 0], 'reminders go out in the last 7 days');
      h.clock.set('2026-03-06T00:00:00Z');
      await h.engine.requests.sweep();
      assert.equal((await h.engine.requests.sweep()).reminded, 0, 'each request is reminded once');
      assert.deepEqual([reminded(withdraw.id), reminded(request.id)], [1, 1]);

      h.clock.set('2026-03-13T00:00:01Z');
      const overdue = await h.engine.requests.list({ overdue: true });
      assert.ok(overdue.requests.some((item) => item.id === request.id));
      assert.ok(overdue.requests.every((item) => item.overdue));
      await rejects(h.engine.requests.extend(officer, request.id, ''), 'reason_required');
      const extended = await h.engine.requests.extend(officer, request.id, 'Records are held in two archives');
      assert.equal(extended.effectiveDueAt, '2026-04-11T23:59:59.999Z');
      assert.equal(extended.overdue, false);
      assert.equal(extended.extensionReason, 'Records are held in two archives');
      await rejects(h.engine.requests.extend(officer, request.id, 'again'), 'extension_not_allowed');
      assert.ok(!(await h.engine.requests.list({ overdue: true })).requests.some((item) => item.id === request.id));
      h.clock.set('2026-03-02T12:00:00Z');
    });

    test('access: a package in JSON, a zip of CSVs and an escaped HTML page, through a signed expiring link, deleted after its period', async () => {
      await h.engine.subjects.create(officer, {
        kinds: ['customer'],
        identities: [{ kind: 'email', value: 'ann@example.com' }],
        data: { purpose: 'order_fulfilment', source: 'person', fields: { 'user.name': '<script>alert(1)</script> Ann', 'user.contact.address': { city: 'Bath', line: '=cmd|calc' } } },
      });
      const request = await verified('access', 'ann@example.com');
      await h.engine.requests.approve(officer, request.id);
      await h.engine.requests.run(officer, request.id);
      await h.engine.jobs.runDue();
      const done = await h.engine.requests.get(request.id);
      assert.equal(done.status, 'completed');
      assert.deepEqual(done.packages.map((item) => item.format), ['html', 'json', 'zip']);
      assert.equal(done.packages[0]!.expiresAt, '2026-04-01T12:00:00.000Z');
      const completedNotice = h.notifier.notices.find((notice) => notice.requestId === request.id && notice.event === 'completed');
      assert.equal(completedNotice?.to, 'person');
      const links = await h.engine.requests.links(request.id, officer);
      assert.match(links.json!, /^https:\/\/privacy\.example\.com\/v1\/packages\/pkg_/);
      const token = (link: string) => link.slice(link.lastIndexOf('/') + 1);

      const json = JSON.parse((await h.engine.requests.download(token(links.json!))).body.toString('utf8'));
      assert.equal(json.sources.vault.profile[0].fields['user.name'].value, '<script>alert(1)</script> Ann');
      assert.deepEqual(Object.keys(json.sources.vault), ['identities', 'profile']);
      assert.equal(json.categories['user.contact.email'].values[0].value, 'ann@example.com');

      const zip = unzipSync(new Uint8Array((await h.engine.requests.download(token(links.zip!))).body));
      assert.deepEqual(Object.keys(zip).sort(), ['data.json', 'vault/identities.csv', 'vault/profile.csv']);
      const csv = strFromU8(zip['vault/profile.csv']!);
      assert.match(csv.split('\r\n')[0]!, /^subject,user\.contact\.address,user\.name$/);
      assert.ok(csv.includes('<script>'), 'CSV keeps values as they are');

      const html = (await h.engine.requests.download(token(links.html!))).body.toString('utf8');
      assert.ok(!html.includes('<script>alert(1)</script>'));
      assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt; Ann'));

      // A forged or altered link opens nothing.
      const forged = token(links.json!).replace(/.$/, (last) => (last === 'A' ? 'B' : 'A'));
      await rejects(h.engine.requests.download(forged), 'package_not_available');
      const stretched = token(links.json!).replace(/\.(\d+)\./, (_, expires: string) => `.${Number(expires) + 1000}.`);
      await rejects(h.engine.requests.download(stretched), 'package_not_available');
      // The link expires (7 days), the package is deleted after the policy's period (30 days by default).
      h.clock.advance(8 * 86_400_000);
      await rejects(h.engine.requests.download(token(links.json!)), 'package_not_available');
      const fresh = await h.engine.requests.links(request.id, officer);
      assert.ok((await h.engine.requests.download(token(fresh.json!))).body.length > 0);
      h.clock.advance(23 * 86_400_000);
      assert.ok((await h.engine.requests.sweep()).packagesDeleted >= 3);
      await rejects(h.engine.requests.download(token(fresh.json!)), 'package_not_available');
      await rejects(h.engine.requests.links(request.id, officer), 'package_not_available');
      const rows = await h.engine.database.db.selectFrom('request_packages').select(['content', 'deleted_at']).where('request_id', '=', request.id).execute();
      assert.ok(rows.every((row) => row.content === null && row.deleted_at !== null));
      assert.ok((await actions(request.id)).includes('request.package_downloaded'));
      h.clock.set('2026-03-02T12:00:00Z');
    });

    test('access reaches every datastore: the shop rows are in the package too', async () => {
      await h.engine.subjects.create(officer, jane).catch(() => undefined);
      const request = await verified('portability', 'jane.doe@example.com');
      await h.engine.requests.approve(officer, request.id);
      await h.engine.requests.run(officer, request.id);
      await h.engine.jobs.runDue();
      const links = await h.engine.requests.links(request.id);
      const zip = unzipSync(new Uint8Array((await h.engine.requests.download(links.zip!.slice(links.zip!.lastIndexOf('/') + 1))).body));
      // Jane's vault data was erased by the first test; the shop still has her orders anonymised… or her customer row.
      assert.ok(Object.keys(zip).every((name) => name === 'data.json' || /^(vault|shop)\/[a-z_]+\.csv$/.test(name)));
    });

    test('correction updates the vault and the datasets; restriction restricts the vault', async () => {
      const subject = await h.engine.subjects.create(officer, { kinds: ['customer'], identities: [{ kind: 'email', value: 'rita@example.com' }], data: { purpose: 'order_fulfilment', source: 'person', fields: { 'user.name': 'Rita Smyth' } } });
      await rejects(h.engine.requests.create(officer, { type: 'correction', identities: [{ kind: 'email', value: 'rita@example.com' }] }), 'invalid_request_details');
      // A value too deep to store is refused at intake, not when the vault is written days later.
      let deep: unknown = 'x';
      for (let level = 0; level < 20_000; level++) deep = [deep];
      await rejects(h.engine.requests.create(officer, { type: 'correction', identities: [{ kind: 'email', value: 'rita@example.com' }], corrections: { 'user.contact.address': deep } }), 'invalid_field_value');
      const request = await verified('correction', 'rita@example.com', { corrections: { 'user.name': 'Rita Smith', 'user.contact.phone_number': '+12075550111' } });
      await h.engine.requests.approve(officer, request.id);
      await h.engine.requests.run(officer, request.id);
      await h.engine.jobs.runDue();
      const done = await h.engine.requests.get(request.id);
      assert.equal(done.status, 'completed');
      const vault = done.tasks.find((task) => task.datastore === 'vault')!.summary as { fields: string[]; notHeld: string[] };
      assert.deepEqual(vault.fields, ['user.name']);
      assert.deepEqual(vault.notHeld, ['user.contact.phone_number']);
      const read = await h.engine.subjects.readData(officer, subject.id, 'order_fulfilment');
      assert.equal(read.fields['user.name']!.value, 'Rita Smith');

      const restriction = await verified('restriction', 'rita@example.com');
      await h.engine.requests.approve(officer, restriction.id);
      await h.engine.requests.run(officer, restriction.id);
      await h.engine.jobs.runDue();
      assert.equal((await h.engine.requests.get(restriction.id)).status, 'completed');
      assert.equal((await h.engine.subjects.get(subject.id)).restricted, true);
      await rejects(h.engine.subjects.readData(officer, subject.id, 'order_fulfilment'), 'purpose_not_permitted');
      assert.equal((await h.engine.subjects.readData(officer, subject.id, 'legal_compliance')).fields['user.name']!.value, 'Rita Smith');
      // Storage goes on: data can still be written (kept), only its use is blocked.
      await h.engine.subjects.writeData(officer, subject.id, { purpose: 'order_fulfilment', source: 'person', fields: { 'user.contact.address': { city: 'Leeds' } } });
      await rejects(h.engine.subjects.readData(officer, subject.id, 'marketing'), 'purpose_not_permitted');
    });

    test('a datastore that is down: its task is retried with backoff and the request is not completed until it answers', async () => {
      await h.engine.subjects.create(officer, { kinds: ['customer'], identities: [{ kind: 'email', value: 'retry@example.com' }], data: { purpose: 'order_fulfilment', source: 'person', fields: { 'user.name': 'Re Try' } } });
      const request = await verified('erasure', 'retry@example.com');
      await h.engine.requests.approve(officer, request.id);
      renameSync(h.shopFile, `${h.shopFile}.away`);
      try {
        await h.engine.requests.run(officer, request.id);
        await h.engine.jobs.runDue();
        let view = await h.engine.requests.get(request.id);
        assert.equal(view.status, 'in_progress');
        const shopTask = () => view.tasks.find((task) => task.datastore === 'shop')!;
        assert.deepEqual([view.tasks[0]!.state, shopTask().state], ['done', 'pending']);
        assert.equal(shopTask().attempts, 1);
        assert.match(shopTask().lastError ?? '', /SQLITE_CANTOPEN|datastore_unavailable/);
        h.clock.advance(1500);
        await h.engine.jobs.runDue();
        view = await h.engine.requests.get(request.id);
        assert.equal(shopTask().attempts, 2);
        assert.equal(view.status, 'in_progress');
      } finally {
        renameSync(`${h.shopFile}.away`, h.shopFile);
      }
      h.clock.advance(5000);
      await h.engine.jobs.runDue();
      const view = await h.engine.requests.get(request.id);
      assert.equal(view.status, 'completed');
      assert.deepEqual(view.tasks.map((task) => [task.datastore, task.attempts]), [['vault', 1], ['shop', 3]]);
      h.clock.set('2026-03-02T12:00:00Z');
    });

    test('a datastore down for good: the request fails, and running it again resumes only the unfinished datastore', async () => {
      await h.engine.subjects.create(officer, { kinds: ['customer'], identities: [{ kind: 'email', value: 'down@example.com' }] });
      const request = await verified('erasure', 'down@example.com');
      await h.engine.requests.approve(officer, request.id);
      renameSync(h.shopFile, `${h.shopFile}.away`);
      try {
        await h.engine.requests.run(officer, request.id);
        for (let attempt = 0; attempt < 4; attempt++) {
          await h.engine.jobs.runDue();
          h.clock.advance(6000);
        }
      } finally {
        renameSync(`${h.shopFile}.away`, h.shopFile);
      }
      const failed = await h.engine.requests.get(request.id);
      assert.equal(failed.status, 'failed');
      assert.match(failed.failure ?? '', /^shop: /);
      assert.ok(h.notifier.notices.some((notice) => notice.requestId === request.id && notice.event === 'failed'));
      const resumed = await h.engine.requests.run(officer, request.id);
      assert.equal(resumed.status, 'in_progress');
      await h.engine.jobs.runDue();
      const done = await h.engine.requests.get(request.id);
      assert.equal(done.status, 'completed');
      assert.deepEqual(done.tasks.map((task) => [task.datastore, task.attempts]), [['vault', 1], ['shop', 5]]);
      h.clock.set('2026-03-02T12:00:00Z');
    });

    test('objection and withdrawal of consent go to the consent ledger through the vault', async () => {
      const subject = await h.engine.subjects.create(officer, { kinds: ['customer'], identities: [{ kind: 'email', value: 'object@example.com' }] });
      const request = await verified('withdraw_consent', 'object@example.com');
      await h.engine.requests.approve(officer, request.id);
      const running = await h.engine.requests.run(officer, request.id);
      assert.deepEqual(running.tasks.map((task) => task.datastore), ['vault'], 'only the vault');
      await h.engine.jobs.runDue();
      const done = await h.engine.requests.get(request.id);
      assert.equal(done.status, 'completed');
      // The demo policy's one consent-based purpose, withdrawn in the consent ledger.
      assert.deepEqual(done.tasks[0]!.summary, { purposes: ['marketing'], applied: true });
      const ledger = await h.engine.consent.overview(officer, subject.id);
      assert.equal(ledger.purposes.find((purpose) => purpose.id === 'marketing')?.decision, 'withdrawn');
      assert.equal((await h.engine.consent.decide(subject.id, 'marketing')).allowed, false);

      const recorded: Array<[string, readonly string[], string]> = [];
      const vault = new VaultHandler(h.engine.subjects, h.engine.policy.policy, h.clock, { withdraw: async (_actor, subjectId, purposes, context) => void recorded.push([subjectId, purposes, context.type]) });
      const result = await vault.withdraw([{ kind: 'email', value: 'object@example.com' }], ['analytics'], { actor: officer, requestId: request.id, type: 'objection' });
      assert.deepEqual(result, { subjects: 1, applied: true });
      assert.deepEqual(recorded, [[subject.id, ['analytics'], 'objection']]);
    });

    test('denial and cancellation need a reason, and end the request', async () => {
      const denied = await verified('access', 'deny@example.com');
      await rejects(h.engine.requests.deny(officer, denied.id, ''), 'reason_required');
      const view = await h.engine.requests.deny(officer, denied.id, 'Manifestly unfounded: repeated request');
      assert.equal(view.status, 'denied');
      await rejects(h.engine.requests.approve(officer, denied.id), 'invalid_request_transition');
      const canceled = await h.engine.requests.create(officer, { type: 'access', identities: [{ kind: 'email', value: 'cancel@example.com' }] });
      assert.equal((await h.engine.requests.cancel(officer, canceled.id, 'Withdrawn by the person')).status, 'canceled');
      await rejects(h.engine.requests.get('req_00000000000000000000000000'), 'request_not_found');
    });
  });
}

test('a right the policy does not offer cannot be requested', async () => {
  const text = readFileSync('examples/demo/pledge.yaml', 'utf8').replace(/    - type: objection\n      channels: \[\{ kind: privacy_center \}\]\n      deadline: 30 days\n/, '');
  const h = await harness('sqlite', text);
  try {
    await rejects(h.engine.requests.create(officer, { type: 'objection', identities: [{ kind: 'email', value: 'x@example.com' }] }), 'request_type_not_offered');
  } finally {
    await h.close();
  }
});

test('CSV cells that a spreadsheet would run as formulas are neutralised', () => {
  assert.equal(csvCell('=SUM(A1)'), "'=SUM(A1)");
  assert.equal(csvCell('a,b'), '"a,b"');
  assert.equal(csvCell('say "hi"'), '"say ""hi"""');
  assert.equal(csvCell({ city: 'Bath' }), '"{""city"":""Bath""}"');
  assert.equal(csvCell(null), '');
});
