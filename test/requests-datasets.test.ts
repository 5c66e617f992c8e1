import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { unzipSync, strFromU8 } from 'fflate';
import { manualClock } from '../src/core/clock.js';
import { loadConfig } from '../src/core/config.js';
import { createLogger } from '../src/core/logger.js';
import { createEngine, type Engine } from '../src/engine.js';
import { loadPolicyText, requirePolicy } from '../src/policy/policy.load.js';
import type { Actor } from '../src/staff/permissions.js';
import { buildShop, shopEmail } from '../examples/shop/build-shop.js';
import { openSqlDatastore } from '../src/datasets/datasets.sql.js';
import { createTestDatastore, datastoreDialects, type TestDatastore } from './support/datastores.js';
import { temporaryDirectory } from './support/databases.js';

/**
 * The whole path a person's request takes, across domains: the vault and the shop database
 * declared under datasets (examples/shop), on each kind of company database. Pledge's own
 * database is SQLite here; its PostgreSQL side is covered by the requests and datasets tests.
 */
const officer: Actor = { type: 'staff', id: 'stf_officer', role: 'privacy_officer' };
const SHOP_POLICY = readFileSync(path.resolve('examples/shop/pledge.yaml'), 'utf8');

for (const dialect of datastoreDialects()) {
  describe(`a data-subject request reaching the shop on ${dialect}`, () => {
    let shop: TestDatastore;
    let engine: Engine;
    let directory: { path: string; remove(): void };

    before(async () => {
      shop = await createTestDatastore(dialect);
      await buildShop(shop.url, { customers: 6 });
      directory = temporaryDirectory('pledge-request-shop-');
      const { config } = loadConfig({ PLEDGE_MASTER_KEY: 'ab'.repeat(32) }, { dataDir: directory.path });
      engine = await createEngine(config, {
        policy: requirePolicy(loadPolicyText(SHOP_POLICY, 'pledge.yaml')),
        clock: manualClock('2026-06-01T09:00:00Z'),
        logger: createLogger('silent'),
        datasetEnv: { SHOP_DATABASE_URL: shop.url },
      });
    });

    after(async () => {
      await engine.close();
      await shop.cleanup();
      directory.remove();
    });

    async function approved(type: 'access' | 'erasure' | 'restriction', email: string): Promise<string> {
      const created = await engine.requests.create(officer, { type, identities: [{ kind: 'email', value: email }], channel: 'email' });
      await engine.requests.overrideVerification(officer, created.id, 'Replied from the address on file');
      await engine.requests.approve(officer, created.id);
      await engine.requests.run(officer, created.id);
      await engine.jobs.runDue();
      return created.id;
    }

    test('access: one package holds the vault fields and every shop collection of the person', async () => {
      const email = shopEmail(2);
      await engine.subjects.create(officer, { kinds: ['customer'], identities: [{ kind: 'email', value: email }], data: { purpose: 'account', source: 'person', fields: { 'user.name': 'Customer Two' } } });
      const id = await approved('access', email);
      const done = await engine.requests.get(id);
      assert.equal(done.status, 'completed');
      assert.deepEqual(done.tasks.map((task) => [task.datastore, task.state]).sort(), [['shop', 'done'], ['vault', 'done']]);

      const links = await engine.requests.links(id, officer);
      const json = await engine.requests.download(links.json!.split('/v1/packages/')[1]!);
      const text = json.body.toString('utf8');
      assert.ok(text.includes('Customer Two'), 'the vault field');
      assert.ok(text.includes(email), 'the shop row found by the email identity');
      const zip = await engine.requests.download(links.zip!.split('/v1/packages/')[1]!);
      const files = unzipSync(new Uint8Array(zip.body));
      const names = Object.keys(files);
      assert.ok(names.some((name) => name.includes('customers')), `customers.csv in ${names.join(', ')}`);
      assert.ok(names.some((name) => name.includes('orders')), 'orders.csv');
      assert.ok(strFromU8(files[names.find((name) => name.includes('customers'))!]!).includes(email));
      assert.ok(!text.includes(shopEmail(3)), 'nobody else');
    });

    test('retention reaches the shop: log-in history past 90 days goes, a dry run first says how much; a held customer keeps theirs', async () => {
      // A customer with old log-ins, known to the vault and under a legal hold.
      let heldEmail = '';
      let heldLogins = 0;
      for (let customer = 1; customer <= 6 && !heldEmail; customer++) {
        const found = await engine.datasets.find('shop', [{ kind: 'email', value: shopEmail(customer) }], () => {});
        if ((found.collections.login_history ?? 0) > 0) {
          heldEmail = shopEmail(customer);
          heldLogins = found.collections.login_history!;
        }
      }
      assert.ok(heldEmail, 'the shop has a customer with log-ins');
      const held = await engine.subjects.lookup(officer, { kind: 'email', value: heldEmail }).catch(() => engine.subjects.create(officer, { kinds: ['customer'], identities: [{ kind: 'email', value: heldEmail }] }));
      await engine.retention.placeHold(officer, held.id, { reason: 'Chargeback dispute' });
      const before = await countRows(engine, 'login_history');
      assert.ok(before > 0);
      const preview = await engine.retention.run(officer, { dryRun: true });
      const logins = preview.outcomes.filter((outcome) => outcome.target === 'dataset:shop/login_history');
      assert.ok(logins.length > 0, `the shop's log-ins are a retention target: ${preview.outcomes.map((outcome) => outcome.target).join(', ')}`);
      const due = logins.reduce((sum, outcome) => sum + outcome.rows, 0);
      assert.ok(due > 0, 'the test bed holds log-ins older than 90 days');
      assert.equal(await countRows(engine, 'login_history'), before, 'a dry run deletes nothing');
      assert.ok(logins.reduce((sum, outcome) => sum + outcome.skippedByHold, 0) > 0, 'the held customer\'s old log-ins are counted as skipped');
      const report = await engine.retention.run(officer);
      assert.equal(report.outcomes.filter((outcome) => outcome.target === 'dataset:shop/login_history').reduce((sum, outcome) => sum + outcome.rows, 0), due);
      assert.equal(await countRows(engine, 'login_history'), before - due);
      const after = await engine.datasets.find('shop', [{ kind: 'email', value: heldEmail }], () => {});
      assert.equal(after.collections.login_history, heldLogins, 'the held customer keeps every log-in');
    });

    test('restriction: the vault subject is restricted and the shop rows with a restrict column are flagged, once', async () => {
      const email = shopEmail(6);
      const subject = await engine.subjects.lookup(officer, { kind: 'email', value: email }).catch(() => engine.subjects.create(officer, { kinds: ['customer'], identities: [{ kind: 'email', value: email }] }));
      // Retention may have flagged some already (payments kept for tax law are restricted): the
      // request flags the rest.
      const direct = openSqlDatastore('direct', shop.url, { timeoutMs: 10_000 });
      const payments = await direct.read(async (session) => {
        const p = session.dialect.placeholder(1);
        const flagged = session.dialect.name === 'postgres' ? 'p.restricted' : 'p.restricted = 1';
        const [row] = await session.query(`select count(*) as n from payments p join orders o on o.id = p.order_id join customers c on c.id = o.customer_id where c.email = ${p} and not (${flagged})`, [email]);
        return Number(row!.n);
      }).finally(() => direct.close());
      const id = await approved('restriction', email);
      const done = await engine.requests.get(id);
      assert.equal(done.status, 'completed');
      assert.equal((await engine.subjects.get(subject.id)).restricted, true);
      assert.deepEqual(done.tasks.find((task) => task.datastore === 'shop')!.summary, { restricted: payments });
      // The flags are in the shop's database: a second restriction finds nothing left to flag.
      const again = await engine.datasets.restrict('shop', [{ kind: 'email', value: email }], { actor: officer });
      assert.equal(again.restricted, 0, JSON.stringify({ again, payments, summary: done.tasks.find((task) => task.datastore === 'shop')!.summary }));
      assert.deepEqual(again.unsupported.includes('customers'), true, 'collections without a restrict column are named');
    });

    test('erasure: the vault is shredded, the shop rows are erased, what tax law keeps is kept and listed', async () => {
      // A customer with at least one payment: payments are what tax law keeps.
      let email = '';
      for (let customer = 1; customer <= 6 && !email; customer++) {
        const summary = await engine.datasets.find('shop', [{ kind: 'email', value: shopEmail(customer) }], () => {});
        // Someone the other tests did not already make a subject (or put under a hold).
        const known = await engine.subjects.lookup(officer, { kind: 'email', value: shopEmail(customer) }).then(() => true, () => false);
        if (!known && (summary.collections.payments ?? 0) > 0) email = shopEmail(customer);
      }
      assert.ok(email, 'the shop has a customer with payments');
      const neighbour = email === shopEmail(5) ? shopEmail(6) : shopEmail(5);
      const subject = await engine.subjects.create(officer, { kinds: ['customer'], identities: [{ kind: 'email', value: email }] });
      const before = await rowsOf(engine, email);
      assert.ok(before > 1);
      const id = await approved('erasure', email);
      const done = await engine.requests.get(id);
      assert.equal(done.status, 'completed');
      assert.equal((await engine.subjects.get(subject.id)).status, 'erased');
      const shopTask = done.tasks.find((task) => task.datastore === 'shop')!;
      // Payments are kept for tax law (exception tax_records), restricted, and listed as kept.
      assert.match(JSON.stringify(shopTask.summary), /tax_records/);
      assert.equal(await rowsOf(engine, email), 0, 'nothing of the person is found in the shop any more');
      // A neighbour is untouched.
      assert.ok((await rowsOf(engine, neighbour)) > 1);
    });
  });
}

/** Rows of one shop table: a dry-run expiry with a cutoff far in the future counts them all. */
async function countRows(engine: Engine, collection: string): Promise<number> {
  return (await engine.datasets.expire('shop', collection, { before: new Date('9999-12-31T00:00:00Z'), action: 'delete', dryRun: true })).rows;
}

async function rowsOf(engine: Engine, email: string): Promise<number> {
  return (await engine.datasets.find('shop', [{ kind: 'email', value: email }], () => {})).rows;
}
