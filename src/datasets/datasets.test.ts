import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { buildShop, shopEmail } from '../../examples/shop/build-shop.js';
import { createTestDatastore, datastoreDialects, type TestDatastore } from '../../test/support/datastores.js';
import { createTestVault, temporaryDirectory, type TestVault } from '../../test/support/vault.js';
import { loadConfig } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { createEngine } from '../engine.js';
import { PledgeError } from '../core/errors.js';
import { loadPolicyText, requirePolicy } from '../policy/policy.load.js';
import type { Policy } from '../policy/policy.model.js';
import type { Actor } from '../staff/permissions.js';
import { datasetHashKey, DatasetsService, type FoundRow } from './datasets.service.js';
import { openSqlDatastore, type Row, type SqlDatastore } from './datasets.sql.js';

const SHOP_YAML = readFileSync('examples/shop/pledge.yaml', 'utf8');
const actor: Actor = { type: 'staff', id: 'stf_01jd3xq8m2v7k9r4t6w8y0z2b4', role: 'privacy_officer' };

function shopPolicy(edit: (text: string) => string = (text) => text): Policy {
  return requirePolicy(loadPolicyText(edit(SHOP_YAML), 'pledge.yaml'));
}

/** Everything stored for customer n, read with hand-written SQL (the truth the service is checked against). */
type Snapshot = Record<'customers' | 'addresses' | 'orders' | 'order_items' | 'payments' | 'support_tickets' | 'newsletter_signups' | 'login_history', Row[]>;

async function snapshot(store: SqlDatastore, customer: number): Promise<Snapshot> {
  return store.read(async (session) => {
    const p = session.dialect.placeholder(1);
    const p2 = session.dialect.placeholder(2);
    const rows = async (sql: string, params: unknown[] = [customer]) => (await session.query(sql, params)).map((row) => JSON.parse(JSON.stringify(row)) as Row);
    return {
      customers: await rows(`select * from customers where id = ${p} order by id`),
      addresses: await rows(`select * from addresses where customer_id = ${p} order by id`),
      orders: await rows(`select * from orders where customer_id = ${p} order by id`),
      order_items: await rows(`select i.* from order_items i join orders o on o.id = i.order_id where o.customer_id = ${p} order by i.id`),
      payments: await rows(`select p.* from payments p join orders o on o.id = p.order_id where o.customer_id = ${p} order by p.id`),
      support_tickets: await rows(`select * from support_tickets where customer_id = ${p} or email = ${p2} order by id`, [customer, shopEmail(customer)]),
      newsletter_signups: await rows(`select * from newsletter_signups where customer_id = ${p} or email = ${p2} order by id`, [customer, shopEmail(customer)]),
      login_history: await rows(`select * from login_history where customer_id = ${p} order by id`),
    };
  });
}

function total(snap: Snapshot): number {
  return Object.values(snap).reduce((sum, rows) => sum + rows.length, 0);
}

/** Customers whose data has every kind of row, so each test exercises the whole graph; each test takes its own. */
async function richCustomers(store: SqlDatastore, customers: number): Promise<number[]> {
  const found: number[] = [];
  for (let customer = 1; customer <= customers; customer++) {
    const snap = await snapshot(store, customer);
    if (Object.values(snap).every((rows) => rows.length > 0) && snap.login_history.length > 1) found.push(customer);
  }
  assert.ok(found.length >= 6, 'the shop has enough customers with every kind of data');
  return found;
}

const SHOP_SIZE = 300;

for (const dialect of datastoreDialects()) {
  describe(`connected datasets on ${dialect}`, () => {
    let datastore: TestDatastore;
    let vault: TestVault;
    let service: DatasetsService;
    let direct: SqlDatastore;
    let rich: number[] = [];
    const policy = shopPolicy();

    before(async () => {
      datastore = await createTestDatastore(dialect);
      await buildShop(datastore.url, { customers: SHOP_SIZE });
      vault = await createTestVault('sqlite', { policy });
      service = new DatasetsService({ policy, env: { SHOP_DATABASE_URL: datastore.url }, audit: vault.audit, clock: vault.clock, hashKey: datasetHashKey(vault.keyring) });
      direct = openSqlDatastore('direct', datastore.url, { timeoutMs: 10_000 });
      rich = await richCustomers(direct, SHOP_SIZE);
    });
    after(async () => {
      await service?.close();
      await direct?.close();
      await vault?.close();
      await datastore?.cleanup();
    });

    test('find streams exactly the rows hand-written SQL finds, fields tagged with categories', async () => {
      assert.deepEqual(service.datastores(), ['shop']);
      const customer = rich[0]!;
      const expected = await snapshot(direct, customer);
      const rows: FoundRow[] = [];
      const summary = await service.find('shop', [{ kind: 'email', value: ` ${shopEmail(customer).toUpperCase()} ` }], (row) => {
        rows.push(row);
      });
      assert.equal(summary.rows, total(expected));
      for (const [collection, list] of Object.entries(expected)) {
        const found = rows.filter((row) => row.collection === collection);
        assert.deepEqual(found.map((row) => String(row.primaryKey.id)).sort(), list.map((row) => String(row.id)).sort(), collection);
        assert.equal(summary.collections[collection], list.length);
      }
      const customerRow = rows.find((row) => row.collection === 'customers')!;
      assert.deepEqual(customerRow.fields.find((field) => field.name === 'email'), { name: 'email', category: 'user.contact.email', value: shopEmail(customer) });
      assert.equal(customerRow.datastore, 'shop');
      // Undeclared columns (order status, totals) are never read.
      assert.ok(rows.filter((row) => row.collection === 'orders').every((row) => row.fields.every((field) => !['status', 'total_cents'].includes(field.name))));

      // Several identities of the same person: each row once.
      const again: FoundRow[] = [];
      await service.find('shop', [{ kind: 'email', value: shopEmail(customer) }, { kind: 'user_id', value: String(customer) }, { kind: 'phone', value: `+1 555 ${String(customer).padStart(7, '0')}` }], (row) => {
        again.push(row);
      });
      assert.equal(again.length, rows.length);

      const refused = new Error('the package is full');
      await assert.rejects(service.find('shop', [{ kind: 'email', value: shopEmail(customer) }], () => { throw refused; }), (error: unknown) => error === refused);

      const nobody = await service.find('shop', [{ kind: 'email', value: 'nobody@shop.example' }], () => assert.fail('no row expected'));
      assert.equal(nobody.rows, 0);

      const audit = await vault.audit.list({ action: 'dataset.read' });
      const entry = audit.entries.at(-3)!; // the first find (then: several identities, nobody)
      assert.equal(entry.details?.datastore, 'shop');
      assert.equal(entry.details?.rows, total(expected));
      assert.ok(!JSON.stringify(audit.entries).includes('@shop.example'), 'no personal data in the audit log');
    });

    test('a dry run lists exactly what the erasure then changes; other customers are untouched', async () => {
      const customer = rich[1]!;
      const neighbour = rich[2]!;
      const before = await snapshot(direct, customer);
      const neighbourBefore = await snapshot(direct, neighbour);
      const identities = [{ kind: 'email' as const, value: shopEmail(customer) }];

      const dry = await service.erase('shop', identities, { dryRun: true, actor, requestId: 'req_01jd3xq8m2v7k9r4t6w8y0z2b4' });
      assert.equal(dry.dryRun, true);
      assert.deepEqual(await snapshot(direct, customer), before, 'a dry run changes nothing');
      assert.equal(dry.counts.deleted, before.addresses.length + before.support_tickets.length + before.newsletter_signups.length + before.login_history.length);
      assert.ok(dry.kept.some((kept) => kept.collection === 'payments' && kept.exception === 'tax_records' && kept.fields.includes('billing_name')));
      assert.ok(dry.kept.some((kept) => kept.collection === 'order_items' && kept.fields.includes('product_sku')));
      const customerChange = dry.changed.find((row) => row.collection === 'customers')!;
      assert.deepEqual([...customerChange.fields].sort(), ['date_of_birth', 'email', 'first_name', 'last_name', 'phone']);
      // Children before parents: every delete of a referring row comes before its parent's change.
      const order = dry.changed.map((row) => row.collection);
      assert.ok(order.lastIndexOf('login_history') < order.indexOf('customers'));
      assert.ok(order.lastIndexOf('payments') < order.indexOf('orders'));

      const done = await service.erase('shop', identities, { dryRun: false, actor, requestId: 'req_01jd3xq8m2v7k9r4t6w8y0z2b4' });
      assert.deepEqual({ ...done, dryRun: true }, dry, 'the erasure did what the dry run said');

      const customerAfter = (await direct.read((session) => session.query(`select * from customers where id = ${session.dialect.placeholder(1)}`, [customer])))[0]!;
      assert.match(String(customerAfter.email), /^[0-9a-f]{64}$/);
      assert.equal(customerAfter.first_name, null);
      assert.equal(customerAfter.last_name, '(erased)');
      assert.equal(customerAfter.phone, null);
      const after = await direct.read(async (session) => {
        const p = session.dialect.placeholder(1);
        const count = async (sql: string) => Number((await session.query(sql, [customer]))[0]!.n);
        return {
          addresses: await count(`select count(*) as n from addresses where customer_id = ${p}`),
          logins: await count(`select count(*) as n from login_history where customer_id = ${p}`),
          tickets: await count(`select count(*) as n from support_tickets where customer_id = ${p}`),
          orders: await session.query(`select shipping_name, shipping_address from orders where customer_id = ${p}`, [customer]),
          payments: await session.query(`select p.billing_name, p.card_last4, p.restricted, p.amount_cents from payments p join orders o on o.id = p.order_id where o.customer_id = ${p}`, [customer]),
        };
      });
      assert.equal(after.addresses, 0);
      assert.equal(after.logins, 0);
      assert.equal(after.tickets, 0);
      assert.equal(after.orders.length, before.orders.length, 'orders stay (their items and payments are kept)');
      assert.ok(after.orders.every((row) => row.shipping_name === null && row.shipping_address === null));
      assert.equal(after.payments.length, before.payments.length);
      for (const payment of after.payments) {
        assert.notEqual(payment.billing_name, null, 'kept under the tax exception');
        assert.equal(payment.card_last4, null);
        assert.ok(payment.restricted === true || Number(payment.restricted) === 1, 'kept rows are marked restricted');
      }
      assert.deepEqual(await snapshot(direct, neighbour), neighbourBefore, 'the neighbour is untouched');

      // A second erasure finds nothing left to change, only what is kept.
      const second = await service.erase('shop', [{ kind: 'user_id', value: String(customer) }], { dryRun: true, actor });
      assert.deepEqual(second.changed, []);
      assert.equal(second.counts.kept, done.counts.kept);

      const audit = (await vault.audit.list({ action: 'dataset.erase', targetId: 'req_01jd3xq8m2v7k9r4t6w8y0z2b4' })).entries;
      assert.equal(audit.length, 2);
      assert.deepEqual(audit.map((entry) => entry.details?.dry_run), [true, false]);
      assert.equal(audit[1]!.details?.deleted, done.counts.deleted);
      assert.ok(!JSON.stringify(audit).includes('shop.example'));
    });

    test('a row that stopped belonging to the person between the dry run and the erasure is left alone', async () => {
      const customer = rich[3]!;
      const other = customer + 1;
      const identities = [{ kind: 'user_id' as const, value: String(customer) }];
      const dry = await service.erase('shop', identities, { dryRun: true, actor });
      const moved = dry.changed.find((row) => row.collection === 'login_history')!;
      await direct.write((session) => session.execute(`update login_history set customer_id = ${session.dialect.placeholder(1)} where id = ${session.dialect.placeholder(2)}`, [other, moved.primaryKey.id]));
      // And the person's email changed meanwhile: the hash is of the current value.
      await direct.write((session) => session.execute(`update customers set email = ${session.dialect.placeholder(1)} where id = ${session.dialect.placeholder(2)}`, [`renamed${customer}@shop.example`, customer]));

      const done = await service.erase('shop', identities, { dryRun: false, actor });
      assert.ok(!done.changed.some((row) => row.collection === 'login_history' && String(row.primaryKey.id) === String(moved.primaryKey.id)));
      const still = await direct.read((session) => session.query(`select customer_id from login_history where id = ${session.dialect.placeholder(1)}`, [moved.primaryKey.id]));
      assert.equal(still.length, 1, 'the moved row was not erased');
      assert.equal(Number(still[0]!.customer_id), other);
      const hashed = await direct.read((session) => session.query(`select email from customers where id = ${session.dialect.placeholder(1)}`, [customer]));
      const viaOldEmail = await service.erase('shop', [{ kind: 'email', value: shopEmail(customer) }], { dryRun: true, actor });
      assert.equal(viaOldEmail.changed.length, 0);
      assert.match(String(hashed[0]!.email), /^[0-9a-f]{64}$/);
    });

    test('a failure midway rolls the whole datastore back and says why, without values', async () => {
      const customer = rich[4]!;
      // A table the policy does not know refers to the person's address: deleting it fails.
      await direct.read(async (session) => {
        await session.execute(`create table gift_cards (id integer primary key, address_id ${dialect === 'sqlite' ? 'integer' : 'bigint'} not null references addresses (id))${dialect === 'mariadb' ? ' engine=InnoDB' : ''}`, []);
      });
      await direct.write((session) => session.execute(`insert into gift_cards (id, address_id) values (1, ${session.dialect.placeholder(1)})`, [customer * 2]));
      const before = await snapshot(direct, customer);
      await assert.rejects(
        service.erase('shop', [{ kind: 'email', value: shopEmail(customer) }], { dryRun: false, actor }),
        (error: unknown) => {
          assert.ok(error instanceof PledgeError);
          assert.equal(error.code, 'dataset_query_failed');
          assert.ok(!error.message.includes('shop.example'));
          return true;
        },
      );
      assert.deepEqual(await snapshot(direct, customer), before, 'nothing half-erased');
      await direct.read((session) => session.execute('drop table gift_cards', []));
    });

    test('correction writes the fields of a category on every row of the person', async () => {
      const customer = rich[5]!;
      await assert.rejects(service.correct('shop', [{ kind: 'email', value: shopEmail(customer) }], { 'user.nonsense': 'x' }, { actor }), { code: 'invalid_field_value' });
      const corrected = await service.correct('shop', [{ kind: 'email', value: shopEmail(customer) }], { 'user.name.first': 'Corrected', 'user.contact.phone_number': '+15550000000', 'user.government_id': 'x' }, { actor });
      assert.deepEqual(corrected.unmatched, ['user.government_id']);
      assert.deepEqual(corrected.updated.map((row) => [row.collection, row.fields.sort()]), [['customers', ['first_name', 'phone']]]);
      const row = (await direct.read((session) => session.query(`select first_name, phone from customers where id = ${session.dialect.placeholder(1)}`, [customer])))[0]!;
      assert.deepEqual({ ...row }, { first_name: 'Corrected', phone: '+15550000000' });
      const audit = (await vault.audit.list({ action: 'dataset.correct' })).entries.at(-1)!;
      assert.deepEqual(audit.details?.categories, ['user.contact.phone_number', 'user.name.first']);
      assert.ok(!JSON.stringify(audit).includes('Corrected'));
    });

    test('rows kept by an exception are counted in one query and marked restricted; a dry run marks nothing', async () => {
      const [from, before] = [new Date(Date.UTC(2020, 6, 1)), new Date(Date.UTC(2022, 0, 1))];
      const inWindow = (restricted: boolean) =>
        direct.read(async (session) => {
          const value = (date: Date) => (session.dialect.name === 'sqlite' ? date.toISOString() : date);
          const [p1, p2, p3] = [1, 2, 3].map((index) => session.dialect.placeholder(index));
          const flag = session.dialect.name === 'postgres' ? restricted : restricted ? 1 : 0;
          return Number((await session.query(`select count(*) as n from payments where created_at >= ${p1} and created_at < ${p2} and restricted = ${p3}`, [value(from), value(before), flag]))[0]!.n);
        });
      const outside = () => direct.read(async (session) => Number((await session.query(`select count(*) as n from payments where ${session.dialect.name === 'postgres' ? 'restricted' : 'restricted = 1'}`, []))[0]!.n));
      const window = (await inWindow(false)) + (await inWindow(true));
      assert.ok(window > 3, 'the shop has payments in the window');
      const restrictedBefore = await outside();

      assert.deepEqual(await service.keepBetween('shop', 'payments', from, before, { dryRun: true }), { rows: window, restricted: 0 });
      assert.equal(await outside(), restrictedBefore, 'a dry run marks nothing');
      const kept = await service.keepBetween('shop', 'payments', from, before, { dryRun: false });
      assert.equal(kept!.rows, window);
      assert.equal(await inWindow(false), 0, 'every kept row is restricted');
      assert.equal(await outside(), restrictedBefore + kept!.restricted, 'rows outside the window are untouched');
      assert.equal((await service.keepBetween('shop', 'payments', from, before, { dryRun: false }))!.restricted, 0, 'marking again changes nothing');
      // A collection without a restrict column is counted, not marked.
      assert.deepEqual(await service.keepBetween('shop', 'order_items', from, before, { dryRun: false }).then((result) => result!.restricted), 0);
    });

    test('expire deletes or anonymises rows older than a date, in batches', async () => {
      const cutoff = new Date(Date.UTC(2021, 0, 1));
      const counted = await direct.read(async (session) => {
        const value = session.dialect.name === 'sqlite' ? cutoff.toISOString() : cutoff;
        const p = session.dialect.placeholder(1);
        return {
          logins: Number((await session.query(`select count(*) as n from login_history where created_at < ${p}`, [value]))[0]!.n),
          orders: Number((await session.query(`select count(*) as n from orders where created_at < ${p} and (shipping_name is not null or shipping_address is not null)`, [value]))[0]!.n),
          oldOrders: Number((await session.query(`select count(*) as n from orders where created_at < ${p}`, [value]))[0]!.n),
          signups: Number((await session.query(`select count(*) as n from newsletter_signups where created_at < ${p} and ip_address is not null`, [value]))[0]!.n),
        };
      });
      assert.ok(counted.logins > 3, 'the shop has old log-ins');
      const dry = await service.expire('shop', 'login_history', { before: cutoff, action: 'delete', dryRun: true, batchSize: 2 });
      assert.equal(dry.rows, counted.logins);
      const progress: number[] = [];
      const done = await service.expire('shop', 'login_history', { before: cutoff, action: 'delete', dryRun: false, batchSize: 2, onProgress: (n) => progress.push(n) });
      assert.equal(done.rows, counted.logins);
      assert.equal(progress.at(-1), counted.logins);
      assert.equal((await service.expire('shop', 'login_history', { before: cutoff, action: 'delete', dryRun: true })).rows, 0);

      const anonymised = await service.expire('shop', 'orders', { before: cutoff, action: 'anonymize', dryRun: false, batchSize: 3 });
      assert.equal(anonymised.rows, counted.orders);
      assert.equal((await service.expire('shop', 'orders', { before: cutoff, action: 'anonymize', dryRun: true })).rows, 0, 'anonymised rows are not counted again');
      const total = async (table: string) => direct.read(async (session) => Number((await session.query(`select count(*) as n from ${table}`, []))[0]!.n));
      const orders = await total('orders');
      const kept = await service.expire('shop', 'orders', { before: cutoff, action: 'delete', dryRun: false, batchSize: 3 });
      assert.equal(kept.referenced, counted.oldOrders, 'every old order has items referring to it: none is deleted, no foreign key breaks');
      assert.equal(kept.rows, 0, 'their fields were already erased');
      assert.equal(await total('orders'), orders);

      const signups = await total('newsletter_signups');
      const dryFields = await service.expire('shop', 'newsletter_signups', { before: cutoff, action: 'delete', dryRun: true, fields: ['ip_address'] });
      const fields = await service.expire('shop', 'newsletter_signups', { before: cutoff, action: 'delete', dryRun: false, fields: ['ip_address'] });
      assert.deepEqual([dryFields.rows, fields.rows], [counted.signups, counted.signups], 'only the named field goes');
      assert.equal(await total('newsletter_signups'), signups, 'the rows stay for their other fields');
      assert.equal((await service.expire('shop', 'newsletter_signups', { before: cutoff, action: 'delete', dryRun: true, fields: ['ip_address'] })).rows, 0);
      await assert.rejects(service.expire('shop', 'newsletter_signups', { before: cutoff, action: 'delete', dryRun: true, fields: ['nope'] }), { code: 'dataset_not_found' });
      const ageless = new DatasetsService({ policy: shopPolicy((text) => text.replace('        timestamp: created_at\n        references:\n          - { field: order_id, to: orders.id }\n        fields:\n          - { name: product_sku', '        references:\n          - { field: order_id, to: orders.id }\n        fields:\n          - { name: product_sku')), env: { SHOP_DATABASE_URL: datastore.url }, audit: vault.audit, clock: vault.clock });
      await assert.rejects(ageless.expire('shop', 'order_items', { before: cutoff, action: 'delete', dryRun: true }), { code: 'dataset_no_timestamp' });
      await assert.rejects(service.expire('shop', 'nope', { before: cutoff, action: 'delete', dryRun: true }), { code: 'dataset_not_found' });
      assert.deepEqual(service.collectionsFor(['user.device']).map((entry) => [entry.collection, entry.timestamp]), [['newsletter_signups', 'created_at'], ['login_history', 'created_at']]);
    });
  });
}

describe('datastore failures', () => {
  let vault: TestVault;
  before(async () => {
    vault = await createTestVault('sqlite', { policy: shopPolicy() });
  });
  after(() => vault.close());

  const serviceWith = (env: Record<string, string>) => new DatasetsService({ policy: shopPolicy(), env, audit: vault.audit, clock: vault.clock });

  test('an unknown datastore, an unset variable and a bad URL are named, not guessed', async () => {
    const service = serviceWith({});
    await assert.rejects(service.find('crm', [{ kind: 'email', value: 'a@b.example' }], () => {}), { code: 'dataset_not_found' });
    await assert.rejects(service.find('shop', [{ kind: 'email', value: 'a@b.example' }], () => {}), (error: PledgeError) => error.code === 'dataset_not_configured' && error.message.includes('SHOP_DATABASE_URL'));
    await assert.rejects(serviceWith({ SHOP_DATABASE_URL: 'ftp://x' }).find('shop', [{ kind: 'email', value: 'a@b.example' }], () => {}), { code: 'dataset_not_configured' });
  });

  test('a datastore that is down is reported unavailable', async () => {
    const missing = serviceWith({ SHOP_DATABASE_URL: 'sqlite:/nonexistent/dir/shop.db' });
    await assert.rejects(missing.find('shop', [{ kind: 'email', value: 'a@b.example' }], () => {}), { code: 'dataset_unavailable' });
    const closedPort = serviceWith({ SHOP_DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none' });
    await assert.rejects(closedPort.erase('shop', [{ kind: 'email', value: 'a@b.example' }], { dryRun: false, actor }), { code: 'dataset_unavailable' });
    await closedPort.close();
    const closedMysql = serviceWith({ SHOP_DATABASE_URL: 'mysql://root@127.0.0.1:1/none' });
    await assert.rejects(closedMysql.erase('shop', [{ kind: 'email', value: 'a@b.example' }], { dryRun: false, actor }), { code: 'dataset_unavailable' });
    await closedMysql.close();
  });
});

for (const dialect of datastoreDialects().filter((name) => name !== 'sqlite')) {
  test(`a ${dialect} datastore that times out mid-erasure keeps nothing half-erased`, async () => {
    const datastore = await createTestDatastore(dialect);
    const vault = await createTestVault('sqlite', { policy: shopPolicy() });
    const policy = shopPolicy((text) => text.replace('timeout_seconds: 30', 'timeout_seconds: 1'));
    const service = new DatasetsService({ policy, env: { SHOP_DATABASE_URL: datastore.url }, audit: vault.audit, clock: vault.clock });
    const direct = openSqlDatastore('direct', datastore.url, { timeoutMs: 10_000 });
    try {
      await buildShop(datastore.url, { customers: 12 });
      // Updating a customer hangs: by then log-ins, tickets and addresses were already deleted in the transaction.
      await direct.read(async (session) => {
        if (dialect === 'postgres') {
          await session.execute(`create function slow() returns trigger language plpgsql as $$ begin perform pg_sleep(3); return new; end $$`, []);
          await session.execute(`create trigger slow before update on customers for each row execute function slow()`, []);
        } else {
          await session.query(`create trigger slow before update on customers for each row set @pause = sleep(3)`, []);
        }
      });
      const customer = 5;
      const before = await snapshot(direct, customer);
      assert.ok(total(before) > 2);
      await assert.rejects(service.erase('shop', [{ kind: 'user_id', value: String(customer) }], { dryRun: false, actor }), { code: 'dataset_unavailable' });
      // The server may still be finishing the cancelled statement; its rollback is what we check.
      await new Promise((resolve) => setTimeout(resolve, dialect === 'postgres' ? 100 : 3500));
      assert.deepEqual(await snapshot(direct, customer), before);
    } finally {
      await service.close();
      await direct.close();
      await vault.close();
      await datastore.cleanup();
    }
  });
}

test('the engine builds the datasets service from the policy and the named variables', async () => {
  const directory = temporaryDirectory('pledge-engine-datasets-');
  const datastore = await createTestDatastore('sqlite');
  try {
    await buildShop(datastore.url, { customers: 5 });
    const { config } = loadConfig({}, { dataDir: directory.path });
    const engine = await createEngine(config, { policy: shopPolicy(), logger: createLogger('silent'), datasetEnv: { SHOP_DATABASE_URL: datastore.url } });
    try {
      assert.deepEqual(engine.datasets.datastores(), ['shop']);
      const summary = await engine.datasets.find('shop', [{ kind: 'user_id', value: '3' }], () => {});
      assert.ok(summary.rows >= 2);
      assert.equal((await engine.audit.list({ action: 'dataset.read' })).entries.length, 1);
    } finally {
      await engine.close();
    }
  } finally {
    await datastore.cleanup();
    directory.remove();
  }
});
