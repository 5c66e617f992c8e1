import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ManualClock } from '../core/clock.js';
import { PledgeError, type ErrorCode } from '../core/errors.js';
import { loadPolicyText, requirePolicy } from '../policy/policy.load.js';
import type { Actor } from '../staff/permissions.js';
import { createTestVault, temporaryDirectory, type TestVault } from '../../test/support/vault.js';
import { testDialects } from '../../test/support/databases.js';
import type { DatasetExpirer } from './dataset-target.js';
import { cutoffFor, RetentionRules } from './retention.rules.js';
import { RetentionService } from './retention.service.js';
import { retentionStore } from './retention.store.js';
import type { RetentionReport } from './retention.service.js';
import type { RetentionOutcome } from './retention.target.js';
import { rejects } from '../../test/support/errors.js';
import { loadSqlite } from '../core/sqlite.js';

const officer: Actor = { type: 'staff', id: 'stf_officer', role: 'privacy_officer' };
const sweeper: Actor = { type: 'system', id: 'retention' };
const DAY = 86_400_000;

/** The demo policy plus a rule that only subscribers fall under, counted from their last activity. */
const POLICY = requirePolicy(
  loadPolicyText(
    readFileSync('examples/demo/pledge.yaml', 'utf8').replace(
      'retention:\n',
      'retention:\n  - id: subscriber_email\n    categories: [user.contact.email]\n    subjects: [subscriber]\n    duration: 1 year\n    trigger: last_activity\n    action: delete\n',
    ),
    'retention-test.yaml',
  ),
);


function line(report: RetentionReport, target: string, category: string, rule?: string): RetentionOutcome {
  const found = report.outcomes.find((outcome) => outcome.target === target && outcome.category === category && (rule === undefined || outcome.rule === rule));
  assert.ok(found, `no outcome for ${target} ${category}: ${JSON.stringify(report.outcomes)}`);
  return found;
}

/** The numbers of a report, for comparing a dry run with the run. */
const numbers = (report: RetentionReport) => report.outcomes.map((outcome) => [outcome.rule, outcome.target, outcome.category, outcome.rows, outcome.keptByException, outcome.skippedByHold]);

test('the most specific rule governs a category; kinds partition it; exceptions take the longest', () => {
  const rules = new RetentionRules(POLICY);
  assert.equal(rules.ruleFor('user.contact.email', ['subscriber'])?.rule.id, 'subscriber_email');
  assert.equal(rules.ruleFor('user.contact.email', ['customer'])?.rule.id, 'account_data');
  assert.equal(rules.ruleFor('user.contact.email', ['customer', 'subscriber'])?.rule.id, 'subscriber_email');
  assert.deepEqual(
    rules.partitions('user.contact.email').map((partition) => [partition.resolved.rule.id, partition.kinds, partition.exceptKinds]),
    [
      ['subscriber_email', ['subscriber'], []],
      ['account_data', undefined, ['subscriber']],
    ],
  );
  assert.equal(rules.ruleFor('user.payment', [])?.exception?.id, 'tax_records');
  assert.equal(rules.ruleFor('user.behavior.purchase_history', [])?.exception, undefined);
  assert.equal(rules.ruleFor('user.health', []), undefined);
  const now = new Date('2026-03-31T00:00:00Z');
  assert.equal(cutoffFor(now, { years: 0, months: 0, weeks: 0, days: 0, hours: 0 }).toISOString(), now.toISOString(), '"0 days": at once');
  assert.equal(cutoffFor(now, { years: 0, months: 1, weeks: 0, days: 0, hours: 0 }).toISOString(), '2026-03-03T00:00:00.000Z', 'by the calendar');
});

for (const dialect of testDialects()) {
  describe(`retention sweeps on ${dialect}`, () => {
    let vault: TestVault & { clock: ManualClock };
    let retention: RetentionService;
    before(async () => {
      vault = await createTestVault(dialect, { policy: POLICY });
      retention = new RetentionService({ database: vault.database, subjects: vault.subjects, audit: vault.audit, policy: POLICY, clock: vault.clock });
    });
    after(() => vault.close());

    const visitor = () =>
      vault.subjects.create(officer, { kinds: ['visitor'], data: { purpose: 'analytics', source: 'automatic', fields: { 'user.device.ip_address': '203.0.113.7', 'user.behavior.browsing_history': ['/books/1'] } } });
    const fieldsOf = async (id: string) => (await vault.database.db.selectFrom('subject_fields').select('category').where('subject_id', '=', id).orderBy('category').execute()).map((row) => row.category);
    const auditActions = async (action: string) => vault.database.db.selectFrom('audit_entries').selectAll().where('action', '=', action).orderBy('seq').execute();

    test('expired fields are deleted, fresh ones kept; the dry run counts exactly what the run does; audited without values', async () => {
      const old1 = await visitor();
      const old2 = await visitor();
      vault.clock.advance(60 * DAY);
      const fresh = await visitor();
      vault.clock.advance(31 * DAY);

      const preview = await retention.preview(officer);
      assert.equal(preview.dryRun, true);
      assert.equal(line(preview, 'vault', 'user.device.ip_address').rows, 2);
      assert.equal(line(preview, 'vault', 'user.behavior.browsing_history').rows, 2);
      assert.equal((await fieldsOf(old1.id)).length, 2, 'a dry run changes nothing');

      const run = await retention.run(sweeper);
      assert.deepEqual(numbers(run), numbers(preview));
      assert.equal(run.totals.rows, 4);
      assert.deepEqual(await fieldsOf(old1.id), []);
      assert.deepEqual(await fieldsOf(old2.id), []);
      assert.deepEqual(await fieldsOf(fresh.id), ['user.behavior.browsing_history', 'user.device.ip_address']);

      const entries = await auditActions('retention.fields_deleted');
      assert.equal(entries.length, 2, 'one entry per batch and category');
      const details = entries.map((entry) => JSON.parse(entry.details) as Record<string, unknown>);
      assert.deepEqual(details.map((detail) => [detail.category, detail.rows]).sort(), [['user.behavior.browsing_history', 2], ['user.device.ip_address', 2]]);
      assert.ok(entries.every((entry) => entry.target_id === 'browsing_logs' && entry.actor_id === 'retention'));
      assert.ok(!entries.some((entry) => entry.details.includes('203.0.113.7')), 'no values in the audit log');
      const swept = await auditActions('retention.swept');
      assert.equal(swept.length, 1);
      assert.equal((JSON.parse(swept[0]!.details) as { rows: number }).rows, 4);

      const again = await retention.run(sweeper);
      assert.equal(again.totals.rows, 0, 'a second sweep finds nothing left to do');
      const audit = await vault.audit.verify();
      assert.equal(audit.ok, true);
    });

    test('batches: a sweep in batches of 2 removes everything expired, one audited transaction per batch', async () => {
      const before = (await auditActions('retention.fields_deleted')).length;
      for (let index = 0; index < 5; index++) await visitor();
      vault.clock.advance(91 * DAY);
      const progress: number[] = [];
      const run = await retention.run(sweeper, { batchSize: 2, onProgress: (step) => progress.push(step.done) });
      assert.equal(line(run, 'vault', 'user.device.ip_address').rows, 6, 'the five new visitors and the fresh one of the last test');
      assert.equal((await auditActions('retention.fields_deleted')).length - before, 6, 'three batches of two per category');
      assert.equal(progress.at(-1), 12);
    });

    test('a stop signal ends the sweep after the current batch; the next sweep continues', async () => {
      for (let index = 0; index < 6; index++) await visitor();
      vault.clock.advance(91 * DAY);
      const abort = new AbortController();
      const stopped = await retention.run(sweeper, { batchSize: 2, signal: abort.signal, onProgress: (step) => (step.done > 0 ? abort.abort() : undefined) });
      assert.equal(stopped.stopped, true);
      assert.equal(stopped.totals.rows, 2, 'one batch, then stop');
      const swept = await auditActions('retention.swept');
      assert.equal((JSON.parse(swept.at(-1)!.details) as { stopped: boolean }).stopped, true);
      const rest = await retention.run(sweeper);
      assert.equal(rest.stopped, undefined);
      assert.equal(rest.totals.rows, 10);
    });

    test('account_closed: data goes after the rule, the key and identities with the next sweep; open accounts stay', async () => {
      const closing = await vault.subjects.create(officer, {
        kinds: ['customer'],
        identities: [{ kind: 'email', value: 'closing@example.com' }],
        data: { purpose: 'account', source: 'person', fields: { 'user.name': 'Closing Person', 'user.contact.email': 'closing@example.com' } },
      });
      const buyer = await vault.subjects.create(officer, {
        kinds: ['customer'],
        data: { purpose: 'order_fulfilment', source: 'person', fields: { 'user.name': 'Buyer', 'user.behavior.purchase_history': [{ order: 1 }] } },
      });
      const staying = await vault.subjects.create(officer, { kinds: ['customer'], data: { purpose: 'account', source: 'person', fields: { 'user.name': 'Staying' } } });
      const shielded = await vault.subjects.create(officer, { kinds: ['customer'], data: { purpose: 'account', source: 'person', fields: { 'user.name': 'Shielded' } } });
      await vault.subjects.close(officer, closing.id);
      await vault.subjects.close(officer, buyer.id);
      await vault.subjects.close(officer, shielded.id);
      const hold = await retention.placeHold(officer, shielded.id, { reason: 'Claim pending' });
      vault.clock.advance(29 * DAY);
      assert.equal(line(await retention.run(sweeper), 'vault', 'user.name').rows, 0, 'not yet 30 days');
      vault.clock.advance(2 * DAY);
      const run = await retention.run(sweeper);
      assert.equal(line(run, 'vault', 'user.name').rows, 2);
      assert.equal(line(run, 'vault', 'user.name').skippedByHold, 1);
      assert.deepEqual(await fieldsOf(shielded.id), ['user.name'], 'a held closed account keeps its data');
      assert.equal(line(run, 'vault', 'user.contact.email', 'account_data').rows, 1);
      assert.deepEqual(await fieldsOf(closing.id), []);
      assert.deepEqual(await fieldsOf(buyer.id), ['user.behavior.purchase_history'], 'orders follow their own rule');
      assert.deepEqual(await fieldsOf(staying.id), ['user.name']);
      assert.equal((await vault.subjects.get(closing.id)).status, 'closed', 'shredded by the next sweep');

      const preview = await retention.preview(officer);
      assert.equal(line(preview, 'vault', 'subject').rows, 1);
      const next = await retention.run(sweeper);
      assert.deepEqual(numbers(next), numbers(preview));
      assert.equal((await vault.subjects.get(closing.id)).status, 'erased');
      assert.equal(await vault.keystore.get(closing.id), undefined, 'data key destroyed');
      await rejects(vault.subjects.lookup(officer, { kind: 'email', value: 'closing@example.com' }), 'subject_not_found');
      assert.equal((await vault.subjects.get(buyer.id)).status, 'closed', 'still holds orders');
      assert.equal((await vault.subjects.get(shielded.id)).status, 'closed', 'held: neither its data nor its key goes');
      assert.ok(await vault.keystore.get(shielded.id));
      await retention.releaseHold(officer, hold.id);
      const erased = (await auditActions('subject.erased')).filter((entry) => entry.target_id === closing.id);
      assert.equal(erased.length, 1);
    });

    test('last_activity, for the subject kinds a rule names: activity moves the deadline', async () => {
      const quiet = await vault.subjects.create(officer, { kinds: ['subscriber'], data: { purpose: 'marketing', source: 'person', fields: { 'user.contact.email': 'quiet@example.com' } } });
      const active = await vault.subjects.create(officer, { kinds: ['subscriber'], data: { purpose: 'marketing', source: 'person', fields: { 'user.contact.email': 'active@example.com' } } });
      const customer = await vault.subjects.create(officer, { kinds: ['customer'], data: { purpose: 'account', source: 'person', fields: { 'user.contact.email': 'customer@example.com' } } });
      vault.clock.advance(200 * DAY);
      await vault.subjects.update(officer, active.id, { kinds: ['subscriber'] });
      vault.clock.advance(166 * DAY);
      const run = await retention.run(sweeper);
      const subscriberLine = run.outcomes.find((outcome) => outcome.rule === 'subscriber_email' && outcome.category === 'user.contact.email');
      assert.equal(subscriberLine?.rows, 1);
      assert.deepEqual(await fieldsOf(quiet.id), []);
      assert.deepEqual(await fieldsOf(active.id), ['user.contact.email']);
      assert.deepEqual(await fieldsOf(customer.id), ['user.contact.email'], 'customers follow account_data');
    });

    test('an exception keeps data restricted to legal obligations, then it goes after its own duration', async () => {
      const order = await vault.subjects.create(officer, { kinds: ['customer'], data: { purpose: 'order_fulfilment', source: 'person', fields: { 'user.behavior.purchase_history': [{ order: 7 }] } } });
      await vault.subjects.writeData(officer, order.id, { purpose: 'order_fulfilment', source: 'partner', partner: 'payment_gateway', fields: { 'user.payment': { paid: 42 } } });
      assert.ok((await vault.subjects.readData(officer, order.id, 'order_fulfilment')).fields['user.payment']);

      vault.clock.advance(3 * 366 * DAY);
      const preview = await retention.preview(officer);
      const run = await retention.run(sweeper);
      assert.deepEqual(numbers(run), numbers(preview));
      assert.ok(line(run, 'vault', 'user.behavior.purchase_history').rows >= 1);
      assert.equal(line(run, 'vault', 'user.payment').rows, 0);
      assert.equal(line(run, 'vault', 'user.payment').keptByException, 1);
      assert.equal(line(run, 'vault', 'user.payment').exception, 'tax_records');
      assert.deepEqual(await fieldsOf(order.id), ['user.payment']);
      assert.deepEqual(Object.keys((await vault.subjects.readData(officer, order.id, 'order_fulfilment')).fields), [], 'restricted: ordinary purposes no longer see it');
      assert.deepEqual((await vault.subjects.readData(officer, order.id, 'legal_compliance')).fields['user.payment']?.value, { paid: 42 });

      const aggregates = await retention.aggregates();
      assert.ok(aggregates.some((row) => row.category === 'user.behavior.purchase_history' && row.purpose === 'order_fulfilment' && row.rows >= 1), 'anonymised: a count remains');
      assert.equal((await auditActions('retention.fields_anonymized')).length >= 1, true);

      vault.clock.advance(4 * 366 * DAY);
      const later = await retention.run(sweeper);
      assert.equal(line(later, 'vault', 'user.payment').rows, 1);
      assert.deepEqual(await fieldsOf(order.id), []);
      assert.ok((await retention.aggregates()).some((row) => row.category === 'user.payment' && row.rows === 1));
    });

    test('legal holds: a held subject is skipped by every sweep until released or lapsed; audited', async () => {
      const held = await visitor();
      const lapsing = await visitor();
      const other = await visitor();
      const hold = await retention.placeHold(officer, held.id, { reason: 'Matter 2026-17' });
      await retention.placeHold(officer, lapsing.id, { reason: 'Short hold', expiresAt: new Date(vault.clock.now().getTime() + 100 * DAY).toISOString() });
      assert.equal(await retention.isHeld(held.id), true);
      assert.equal(await retention.isHeld(other.id), false);
      await rejects(retention.placeHold(officer, held.id, { reason: '  ' }), 'hold_invalid');
      await rejects(retention.placeHold(officer, held.id, { reason: 'x', expiresAt: '2000-01-01T00:00:00Z' }), 'hold_invalid');
      await rejects(retention.releaseHold(officer, 'hld_00000000000000000000000000'), 'hold_not_found');

      vault.clock.advance(91 * DAY);
      const preview = await retention.preview(officer);
      assert.equal(line(preview, 'vault', 'user.device.ip_address').skippedByHold, 2);
      const run = await retention.run(sweeper);
      assert.deepEqual(numbers(run), numbers(preview));
      assert.equal(line(run, 'vault', 'user.device.ip_address').rows, 1);
      assert.equal((await fieldsOf(held.id)).length, 2);
      assert.equal((await fieldsOf(lapsing.id)).length, 2);
      assert.deepEqual(await fieldsOf(other.id), []);

      vault.clock.advance(10 * DAY);
      assert.equal(await retention.isHeld(lapsing.id), false, 'the hold lapsed');
      await retention.run(sweeper);
      assert.deepEqual(await fieldsOf(lapsing.id), []);
      assert.equal((await fieldsOf(held.id)).length, 2);

      const released = await retention.releaseHold(officer, hold.id);
      assert.equal(released.active, false);
      assert.equal(released.releasedBy, officer.id);
      assert.equal(await retention.isHeld(held.id), false);
      await retention.run(sweeper);
      assert.deepEqual(await fieldsOf(held.id), []);
      assert.equal((await retention.listHolds({ subjectId: held.id })).length, 0);
      assert.equal((await retention.listHolds({ subjectId: held.id, all: true })).length, 1);

      const placed = await auditActions('retention.hold_placed');
      assert.ok(placed.some((entry) => entry.target_id === held.id && entry.details.includes(hold.id)));
      assert.ok(!placed.some((entry) => entry.details.includes('Matter')), 'the reason stays in the hold record');
      assert.equal((await auditActions('retention.hold_released')).filter((entry) => entry.target_id === held.id).length, 1);
    });

    test('one sweep at a time: a lease held elsewhere refuses the run; an expired lease is taken over', async () => {
      const now = vault.clock.now();
      assert.equal(await retentionStore.acquireLease(vault.database.db, 'sweep', 'job_other', now.toISOString(), new Date(now.getTime() + 60_000).toISOString()), true);
      await rejects(retention.run(sweeper), 'retention_sweep_running');
      assert.equal((await retention.preview(officer)).dryRun, true, 'a dry run needs no lease');
      vault.clock.advance(61_000);
      const run = await retention.run(sweeper);
      assert.equal(run.dryRun, false);
      const lease = await vault.database.db.selectFrom('retention_leases').selectAll().executeTakeFirstOrThrow();
      assert.equal(lease.holder, null, 'released after the run');
    });

    test('a dataset collection is swept beside the vault, through the expire contract, on a real SQLite table', async () => {
      const directory = temporaryDirectory('pledge-dataset-');
      // The driver the engine itself loads (another build on Node 24).
      const Sqlite = loadSqlite();
      const shop = new Sqlite(path.join(directory.path, 'shop.db'));
      try {
        shop.exec('create table access_log (id integer primary key, ip text, visited_at text not null)');
        const insert = shop.prepare('insert into access_log (ip, visited_at) values (?, ?)');
        const now = vault.clock.now().getTime();
        for (let index = 0; index < 25; index++) insert.run(`198.51.100.${index}`, new Date(now - (index < 15 ? 120 : 10) * DAY).toISOString());
        // A real, minimal implementation of the contract the datasets domain fulfils.
        const datasets: DatasetExpirer = {
          async expire(datastoreId, collection, options) {
            assert.equal(datastoreId, 'shop');
            assert.equal(collection, 'access_log');
            const before = options.before.toISOString();
            if (options.dryRun) return { rows: (shop.prepare('select count(*) as n from access_log where visited_at < ?').get(before) as { n: number }).n };
            let rows = 0;
            const batch = options.batchSize ?? 1000;
            for (;;) {
              const changed = options.action === 'delete'
                ? shop.prepare('delete from access_log where id in (select id from access_log where visited_at < ? limit ?)').run(before, batch).changes
                : 0;
              rows += changed;
              if (changed > 0) options.onProgress?.(rows);
              if (changed < batch) return { rows };
            }
          },
          // No holds in this test; the real datasets service finds held rows (test/requests-datasets.test.ts).
          async heldRowKeys() {
            return new Set<string>();
          },
        };
        const withDataset = new RetentionService({ database: vault.database, subjects: vault.subjects, audit: vault.audit, policy: POLICY, clock: vault.clock });
        withDataset.addDatasetCollection(datasets, { datastore: 'shop', collection: 'access_log', categories: ['user.device.ip_address'] });
        const preview = await withDataset.preview(officer);
        assert.equal(line(preview, 'dataset:shop/access_log', 'user.device.ip_address').rows, 15);
        const progress: number[] = [];
        const run = await withDataset.run(sweeper, { batchSize: 4, onProgress: (step) => progress.push(step.done) });
        assert.deepEqual(numbers(run), numbers(preview));
        assert.equal(line(run, 'dataset:shop/access_log', 'user.device.ip_address').action, 'delete');
        assert.equal((shop.prepare('select count(*) as n from access_log').get() as { n: number }).n, 10);
        assert.equal(progress.at(-1), run.totals.rows);
      } finally {
        shop.close();
        directory.remove();
      }
    });
  });
}
