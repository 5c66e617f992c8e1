import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { manualClock, type ManualClock } from '../src/core/clock.js';
import { loadConfig } from '../src/core/config.js';
import { createLogger } from '../src/core/logger.js';
import { openSqlDatastore, type Row, type SqlDatastore } from '../src/datasets/datasets.sql.js';
import { createEngine, type Engine } from '../src/engine.js';
import { loadPolicyText, requirePolicy } from '../src/policy/policy.load.js';
import type { RetentionReport } from '../src/retention/retention.service.js';
import type { RetentionOutcome } from '../src/retention/retention.target.js';
import type { Actor } from '../src/staff/permissions.js';
import { buildShop, shopEmail } from '../examples/shop/build-shop.js';
import { createTestDatabase, temporaryDirectory, type TestDatabase } from './support/databases.js';
import { createTestDatastore, datastoreDialects, type DatastoreDialect, type TestDatastore } from './support/datastores.js';

/**
 * Retention reaching the shop database (examples/shop) through the people its rows belong
 * to: rules counting from a closed account or from the last activity, legal holds, an
 * exception that keeps rows restricted, and the order of a sweep (datasets before the
 * vault's crypto-shredding). Checked the way a user would: by reading the shop's tables.
 * The shop runs on each kind of company database; Pledge's own database is PostgreSQL when
 * the shop is, SQLite otherwise.
 */
const officer: Actor = { type: 'staff', id: 'stf_officer', role: 'privacy_officer' };
const sweeper: Actor = { type: 'system', id: 'retention' };
const SHOP_POLICY = readFileSync(path.resolve('examples/shop/pledge.yaml'), 'utf8');
const DAY = 86_400_000;
const CUSTOMERS = 150;

function edit(text: string, from: string, to: string): string {
  assert.ok(text.includes(from), `the shop policy still reads "${from.trim().split('\n')[0]}"`);
  return text.replace(from, to);
}

/**
 * The shop's policy with: an exception keeping delivery addresses a year after an account
 * closes (legal claims), a rule deleting lapsed subscribers' email a year after their last
 * activity, and a restrict column on orders.
 */
const BY_PERSON_POLICY = [
  (text: string) =>
    edit(
      text,
      '    trigger: account_closed\n    action: delete\n',
      '    trigger: account_closed\n    action: delete\n    exceptions:\n      - id: address_claims\n        reason: legal_claims\n        description: Delivery addresses stay while a claim about an order can be made.\n        categories: [user.contact.address]\n        duration: 1 year\n',
    ),
  (text: string) =>
    edit(
      text,
      'retention:\n',
      'retention:\n  - id: lapsed_subscribers\n    description: Subscribers inactive for a year lose their email.\n    categories: [user.contact.email]\n    subjects: [subscriber]\n    duration: 1 year\n    trigger: last_activity\n    action: delete\n',
    ),
  (text: string) => edit(text, '      - name: orders\n        primary_key: [id]\n        timestamp: created_at\n', '      - name: orders\n        primary_key: [id]\n        timestamp: created_at\n        restrict_column: restricted\n'),
].reduce((text, change) => change(text), SHOP_POLICY);

/** The shop's policy with account data counted from collection: a delete rule on parents whose children are kept. */
const BY_TIMESTAMP_POLICY = edit(SHOP_POLICY, '    duration: 30 days\n    trigger: account_closed\n', '    duration: 1 year\n    trigger: collected\n');

type Table = 'customers' | 'addresses' | 'orders' | 'order_items' | 'payments' | 'support_tickets' | 'newsletter_signups' | 'login_history';
type Snapshot = Record<Table, Row[]>;

/** Everything stored for customer n, read with hand-written SQL. */
async function snapshot(store: SqlDatastore, customer: number): Promise<Snapshot> {
  return store.read(async (session) => {
    const p = session.dialect.placeholder(1);
    const rows = async (sql: string) => (await session.query(sql, [customer])).map((row) => JSON.parse(JSON.stringify(row)) as Row);
    return {
      customers: await rows(`select * from customers where id = ${p}`),
      addresses: await rows(`select * from addresses where customer_id = ${p} order by id`),
      orders: await rows(`select * from orders where customer_id = ${p} order by id`),
      order_items: await rows(`select i.* from order_items i join orders o on o.id = i.order_id where o.customer_id = ${p} order by i.id`),
      payments: await rows(`select p.* from payments p join orders o on o.id = p.order_id where o.customer_id = ${p} order by p.id`),
      support_tickets: await rows(`select * from support_tickets where customer_id = ${p} order by id`),
      newsletter_signups: await rows(`select * from newsletter_signups where customer_id = ${p} order by id`),
      login_history: await rows(`select * from login_history where customer_id = ${p} order by id`),
    };
  });
}

async function count(store: SqlDatastore, table: Table): Promise<number> {
  return store.read(async (session) => Number((await session.query(`select count(*) as n from ${table}`, []))[0]!.n));
}

/** Rows compared without printing them when they differ: shop rows hold (made-up) personal data. */
function same(actual: unknown, expected: unknown, message: string): void {
  assert.ok(isDeepStrictEqual(actual, expected), message);
}

const flag = (value: unknown) => value === true || Number(value) === 1;
/** A row without its restrict flag: what retention keeps under an exception it may flag. */
const unflagged = (row: Record<string, unknown>) => Object.fromEntries(Object.entries(row).filter(([column]) => column !== 'restricted'));
const isHash = (value: unknown) => typeof value === 'string' && /^[0-9a-f]{64}$/.test(value);

function line(report: RetentionReport, target: string, rule: string): RetentionOutcome {
  const found = report.outcomes.find((outcome) => outcome.target === target && outcome.rule === rule);
  assert.ok(found, `no outcome for ${target} ${rule}: ${report.outcomes.map((outcome) => `${outcome.target} ${outcome.rule}`).join('; ')}`);
  return found;
}

/** The numbers (and notes) of a report, for comparing a dry run with the run. */
const numbers = (report: RetentionReport) => report.outcomes.map((outcome) => [outcome.rule, outcome.target, outcome.category, outcome.rows, outcome.keptByException, outcome.skippedByHold, outcome.note]);

interface Bed {
  shop: TestDatastore;
  pledge: TestDatabase;
  engine: Engine;
  clock: ManualClock;
  direct: SqlDatastore;
  directory: { path: string; remove(): void };
}

async function openBed(dialect: DatastoreDialect, policyText: string, prepare?: (direct: SqlDatastore) => Promise<void>): Promise<Bed> {
  const shop = await createTestDatastore(dialect);
  await buildShop(shop.url, { customers: CUSTOMERS });
  const direct = openSqlDatastore('direct', shop.url, { timeoutMs: 10_000 });
  await prepare?.(direct);
  const pledge = await createTestDatabase(dialect === 'postgres' ? 'postgres' : 'sqlite');
  const directory = temporaryDirectory('pledge-retention-shop-');
  const clock = manualClock('2026-06-01T09:00:00Z');
  const { config } = loadConfig({ PLEDGE_MASTER_KEY: 'ab'.repeat(32) }, { dataDir: directory.path, databaseUrl: pledge.url });
  const engine = await createEngine(config, {
    policy: requirePolicy(loadPolicyText(policyText, 'pledge.yaml')),
    clock,
    logger: createLogger('silent'),
    datasetEnv: { SHOP_DATABASE_URL: shop.url },
  });
  return { shop, pledge, engine, clock, direct, directory };
}

async function closeBed(bed: Bed | undefined): Promise<void> {
  if (!bed) return;
  await bed.engine.close();
  await bed.direct.close();
  await bed.shop.cleanup();
  await bed.pledge.cleanup();
  bed.directory.remove();
}

/** The first customers (1…) whose snapshot passes each test, each taken once. */
async function pick(direct: SqlDatastore, wanted: Array<(snap: Snapshot) => boolean>): Promise<number[]> {
  const chosen: number[] = [];
  for (const test of wanted) {
    let found: number | undefined;
    for (let customer = 1; customer <= CUSTOMERS && found === undefined; customer++) {
      if (!chosen.includes(customer) && test(await snapshot(direct, customer))) found = customer;
    }
    assert.ok(found !== undefined, 'the shop holds a customer of each kind the test needs');
    chosen.push(found);
  }
  return chosen;
}

for (const dialect of datastoreDialects()) {
  describe(`retention by person reaching the shop on ${dialect}`, () => {
    let bed: Bed;
    let closedOne: number;
    let heldOne: number;
    let activeOne: number;
    let subscriber: number;
    const subjects: Record<'closed' | 'held' | 'active' | 'subscriber', string> = { closed: '', held: '', active: '', subscriber: '' };
    const at: Record<string, Snapshot> = {};

    before(async () => {
      bed = await openBed(dialect, BY_PERSON_POLICY, async (direct) => {
        const bool = dialect === 'postgres' ? 'boolean not null default false' : 'integer not null default 0';
        await direct.read((session) => session.execute(`alter table orders add column restricted ${bool}`, []));
      });
      [closedOne, heldOne, activeOne, subscriber] = await pick(bed.direct, [
        (snap) => snap.orders.length > 0 && snap.support_tickets.length > 0 && snap.newsletter_signups.length > 0 && snap.order_items.some((item) => item.gift_message !== null),
        (snap) => snap.orders.length > 0 && snap.login_history.length > 0 && snap.support_tickets.length > 0,
        (snap) => snap.orders.length > 0,
        (snap) => snap.newsletter_signups.length > 0,
      ]) as [number, number, number, number];
      const create = async (customer: number, kinds: string[]) =>
        (await bed.engine.subjects.create(officer, { kinds, identities: [{ kind: 'email', value: shopEmail(customer) }] })).id;
      subjects.closed = await create(closedOne, ['customer']);
      subjects.held = await create(heldOne, ['customer']);
      subjects.active = await create(activeOne, ['customer']);
      subjects.subscriber = await create(subscriber, ['subscriber']);
      await bed.engine.subjects.close(officer, subjects.closed);
      await bed.engine.subjects.close(officer, subjects.held);
      await bed.engine.retention.placeHold(officer, subjects.held, { reason: 'Chargeback dispute' });
      for (const [name, customer] of Object.entries({ closedOne, heldOne, activeOne, subscriber })) at[name] = await snapshot(bed.direct, customer);
    });

    after(() => closeBed(bed));

    test('a sweep runs every dataset target before the vault, whose shredding destroys the identities they need', () => {
      const ids = bed.engine.retention.targets().map((target) => target.id);
      assert.equal(ids.at(-1), 'vault');
      assert.ok(ids.indexOf('dataset:shop') < ids.indexOf('vault'));
      assert.ok(ids.indexOf('dataset:shop/login_history') < ids.indexOf('dataset:shop'), 'the timestamp steps first, then the steps by person');
      assert.ok(ids.indexOf('dataset:shop/customers') < ids.indexOf('dataset:shop/login_history'), 'parents before the rows referring to them');
    });

    test('30 days after an account closed: its rows go, what an exception keeps stays restricted, the held and the others are untouched; the dry run said so', async () => {
      bed.clock.advance(31 * DAY);
      const logins = await count(bed.direct, 'login_history');
      const preview = await bed.engine.retention.run(officer, { dryRun: true });
      same(await snapshot(bed.direct, closedOne), at.closedOne, 'a dry run changes nothing');
      const run = await bed.engine.retention.run(sweeper, { batchSize: 2 });
      assert.deepEqual(numbers(run), numbers(preview), 'the dry run reported exactly what the run did');

      const closed = await snapshot(bed.direct, closedOne);
      const before = at.closedOne!;
      assert.equal(closed.support_tickets.length, 0, 'support tickets deleted');
      assert.equal(closed.newsletter_signups.length, 0, 'newsletter sign-ups deleted');
      assert.equal(closed.login_history.length, 0, 'old log-ins deleted (their own 90-day rule)');
      same(closed.addresses, before.addresses, 'addresses kept under the exception');
      assert.equal(closed.orders.length, before.orders.length, 'orders stay: payments and items refer to them');
      for (const [index, order] of closed.orders.entries()) {
        assert.equal(order.shipping_name, null, 'the name on the order is erased');
        same(order.shipping_address, before.orders[index]!.shipping_address, 'the address is kept under the exception…');
        assert.ok(flag(order.restricted), '…and restricted');
      }
      assert.ok(closed.order_items.every((item) => item.gift_message === null), 'gift messages erased');
      same(closed.order_items.map((item) => item.product_sku), before.order_items.map((item) => item.product_sku), 'what was bought follows the orders rule');
      // Payments past the orders rule but within the tax exception are kept, and now flagged restricted.
      same(closed.payments.map(unflagged), before.payments.map(unflagged), 'payments follow their own rule');
      const [customer] = closed.customers;
      assert.ok(customer, 'the customer row stays: rows refer to it');
      same([customer.email, customer.phone], [before.customers[0]!.email, before.customers[0]!.phone], 'the identities stay while the kept rows need them to be found');
      assert.ok(customer.first_name === null && customer.date_of_birth === null, 'the rest of the account data is erased');
      assert.ok(customer.last_name === '(erased)', 'a NOT NULL name takes its fixed value');

      same(await snapshot(bed.direct, heldOne), at.heldOne, 'the held customer keeps every row, old log-ins too');
      const active = await snapshot(bed.direct, activeOne);
      same([active.customers, active.orders, active.addresses], [at.activeOne!.customers, at.activeOne!.orders, at.activeOne!.addresses], 'an open account is untouched');
      const lapsing = await snapshot(bed.direct, subscriber);
      assert.equal(lapsing.newsletter_signups.length, at.subscriber!.newsletter_signups.length, 'a subscriber active a month ago keeps the sign-up');
      assert.ok(lapsing.newsletter_signups.every((signup) => signup.ip_address === null), '…whose IP address went after 90 days');

      const count_ = (rows: Row[], field?: string) => (field ? rows.filter((row) => row[field] !== null).length : rows.length);
      assert.equal(line(run, 'dataset:shop/support_tickets', 'account_data').rows, count_(before.support_tickets));
      assert.equal(line(run, 'dataset:shop/newsletter_signups', 'account_data').rows, count_(before.newsletter_signups));
      assert.equal(line(run, 'dataset:shop/orders', 'account_data').rows, count_(before.orders));
      assert.equal(line(run, 'dataset:shop/orders', 'account_data').keptByException, count_(before.orders));
      assert.equal(line(run, 'dataset:shop/orders', 'account_data').exception, 'address_claims');
      assert.equal(line(run, 'dataset:shop/addresses', 'account_data').rows, 0);
      assert.equal(line(run, 'dataset:shop/addresses', 'account_data').keptByException, count_(before.addresses));
      assert.equal(line(run, 'dataset:shop/order_items', 'account_data').rows, count_(before.order_items, 'gift_message'));
      assert.equal(line(run, 'dataset:shop/customers', 'account_data').rows, 1);
      assert.equal(line(run, 'dataset:shop/support_tickets', 'account_data').skippedByHold, count_(at.heldOne!.support_tickets), 'the held customer\'s tickets are counted as skipped');
      assert.equal(line(run, 'dataset:shop/login_history', 'browsing_logs').skippedByHold, count_(at.heldOne!.login_history));
      assert.equal(line(run, 'dataset:shop/login_history', 'browsing_logs').rows, logins - count_(at.heldOne!.login_history));
      assert.equal((await bed.engine.subjects.get(subjects.closed)).status, 'closed', 'kept rows keep the account until the exception ends');

      const audit = await bed.engine.audit.list({ action: 'dataset.expire_people', limit: 500 });
      const swept = audit.entries.filter((entry) => entry.actor.id === sweeper.id);
      assert.ok(swept.length > 0, 'every batch by person is audited');
      const text = JSON.stringify(swept);
      assert.ok(text.includes(subjects.closed), 'the audit names the subjects swept');
      assert.ok(!text.includes(shopEmail(closedOne)) && !text.includes(String(before.customers[0]!.first_name)), 'and no value');
      assert.equal((await bed.engine.audit.verify()).ok, true);
    });

    test('a second sweep in the same state walks no one again and reports nothing more', async () => {
      const reads = async () => (await bed.engine.audit.list({ action: 'identities.read', targetId: subjects.closed, limit: 500 })).entries.length;
      const before = await reads();
      const again = await bed.engine.retention.run(sweeper);
      assert.equal(again.outcomes.filter((outcome) => outcome.target.startsWith('dataset:shop/') && outcome.trigger !== 'collected').reduce((sum, outcome) => sum + outcome.rows, 0), 0);
      assert.match(line(again, 'dataset:shop/orders', 'account_data').note ?? '', /unchanged since their last sweep/);
      assert.equal(await reads(), before, 'the closed account\'s identities were not read again');
    });

    test('a year on: what the exception kept goes, a lapsed subscriber\'s email goes, and the account is shredded in the same sweep', async () => {
      bed.clock.set(new Date(Date.parse('2026-06-01T09:00:00Z') + 366 * DAY));
      const preview = await bed.engine.retention.run(officer, { dryRun: true });
      const run = await bed.engine.retention.run(sweeper);
      assert.deepEqual(numbers(run), numbers(preview));

      const closed = await snapshot(bed.direct, closedOne);
      assert.equal(closed.addresses.length, 0, 'addresses deleted when the exception ended');
      assert.ok(closed.orders.every((order) => order.shipping_address === null && order.shipping_name === null));
      assert.equal(closed.orders.length, at.closedOne!.orders.length, 'orders stay for the payments that refer to them');
      assert.ok(isHash(closed.customers[0]?.email), 'the email is replaced by its hash');
      assert.equal(line(run, 'dataset:shop/addresses', 'account_data').rows, at.closedOne!.addresses.length);
      assert.match(line(run, 'dataset:shop/customers', 'account_data').note ?? '', /still referred to/);
      assert.equal((await bed.engine.subjects.get(subjects.closed)).status, 'erased', 'shredded after its rows were reached, in the same sweep');
      assert.equal(run.outcomes.find((outcome) => outcome.target === 'vault' && outcome.category === 'subject')?.rows, 1);

      const lapsed = await snapshot(bed.direct, subscriber);
      assert.equal(lapsed.newsletter_signups.length, 0, 'the lapsed subscriber\'s sign-ups are deleted');
      assert.ok(isHash(lapsed.customers[0]?.email), 'their email is erased where the row must stay');
      same(lapsed.customers[0]?.first_name, at.subscriber!.customers[0]!.first_name, 'what other rules keep stays');
      assert.ok(lapsed.support_tickets.every((ticket) => ticket.email === null && ticket.body !== null));
      assert.equal(line(run, 'dataset:shop/newsletter_signups', 'lapsed_subscribers').rows, at.subscriber!.newsletter_signups.length);

      same(await snapshot(bed.direct, heldOne), at.heldOne, 'still held: still untouched');
      const active = await snapshot(bed.direct, activeOne);
      same([active.customers, active.addresses], [at.activeOne!.customers, at.activeOne!.addresses], 'an open account is still untouched');
    });

    test('released, the held customer\'s rows go by the next sweep', async () => {
      const [hold] = await bed.engine.retention.listHolds({ subjectId: subjects.held });
      await bed.engine.retention.releaseHold(officer, hold!.id);
      const run = await bed.engine.retention.run(sweeper);
      const released = await snapshot(bed.direct, heldOne);
      assert.equal(released.support_tickets.length, 0);
      assert.equal(released.login_history.length, 0);
      assert.equal(released.addresses.length, 0, 'past the exception too, a year after closing');
      assert.ok(line(run, 'dataset:shop/support_tickets', 'account_data').rows > 0);
    });
  });

  describe(`a delete rule counted from collection on parent rows of the shop on ${dialect}`, () => {
    let bed: Bed;
    let childless: number;
    let buyer: number;
    const at: Record<string, Snapshot> = {};

    before(async () => {
      bed = await openBed(dialect, BY_TIMESTAMP_POLICY);
      [childless, buyer] = await pick(bed.direct, [(snap) => snap.orders.length === 0 && snap.addresses.length > 0, (snap) => snap.orders.length > 0 && snap.payments.length > 0]) as [number, number];
      at.childless = await snapshot(bed.direct, childless);
      at.buyer = await snapshot(bed.direct, buyer);
    });

    after(() => closeBed(bed));

    test('rows still referred to by kept rows are emptied, not deleted; nothing fails half-way; the dry run says so', async () => {
      const payments = await count(bed.direct, 'payments');
      const orders = await count(bed.direct, 'orders');
      const preview = await bed.engine.retention.run(officer, { dryRun: true });
      const run = await bed.engine.retention.run(sweeper, { batchSize: 7 });
      assert.deepEqual(numbers(run), numbers(preview));

      assert.equal(await count(bed.direct, 'payments'), payments, 'payments follow their own rule');
      assert.equal(await count(bed.direct, 'orders'), orders, 'orders stay: payments and items refer to them');
      const bought = await snapshot(bed.direct, buyer);
      assert.ok(bought.orders.every((order) => order.shipping_name === null && order.shipping_address === null), 'their personal fields are erased');
      assert.equal(bought.customers.length, 1, 'the customer stays: orders refer to it');
      assert.ok(isHash(bought.customers[0]!.email) && bought.customers[0]!.first_name === null);
      assert.equal(bought.addresses.length, 0);
      assert.match(line(run, 'dataset:shop/orders', 'account_data').note ?? '', /still referred to by other rows/);
      assert.equal(line(run, 'dataset:shop/orders', 'account_data').rows, orders);

      const alone = await snapshot(bed.direct, childless);
      assert.equal(alone.addresses.length, 0);
      assert.equal(alone.customers.length, 1, 'judged before its addresses went: emptied this sweep…');
      assert.ok(isHash(alone.customers[0]!.email));

      const next = await bed.engine.retention.run(sweeper);
      assert.equal((await snapshot(bed.direct, childless)).customers.length, 0, '…deleted by the next, nothing referring to it any more');
      assert.equal((await snapshot(bed.direct, buyer)).customers.length, 1);
      assert.equal(line(next, 'dataset:shop/orders', 'account_data').rows, 0, 'emptied rows are not counted again');
    });
  });

  describe(`the shop's own policy on ${dialect}: data deleted 30 days after an account closes`, () => {
    let bed: Bed;
    let loner: number;
    let buyer: number;
    let neighbour: number;
    const subjects: string[] = [];
    const at: Record<string, Snapshot> = {};

    before(async () => {
      bed = await openBed(dialect, SHOP_POLICY);
      [loner, buyer, neighbour] = await pick(bed.direct, [
        (snap) => snap.orders.length === 0 && snap.login_history.length > 0,
        (snap) => snap.orders.length > 0,
        (snap) => snap.orders.length > 0,
      ]) as [number, number, number];
      for (const customer of [loner, buyer]) {
        const { id } = await bed.engine.subjects.create(officer, { kinds: ['customer'], identities: [{ kind: 'email', value: shopEmail(customer) }] });
        await bed.engine.subjects.close(officer, id);
        subjects.push(id);
      }
      for (const [name, customer] of Object.entries({ loner, buyer, neighbour })) at[name] = await snapshot(bed.direct, customer);
    });

    after(() => closeBed(bed));

    test('one sweep: the rows go (a customer whose log-ins expire in the same sweep goes whole), then the accounts are shredded', async () => {
      bed.clock.advance(31 * DAY);
      const preview = await bed.engine.retention.run(officer, { dryRun: true });
      const run = await bed.engine.retention.run(sweeper);
      assert.deepEqual(numbers(run), numbers(preview), 'the dry run foresaw the log-ins going first');

      const alone = await snapshot(bed.direct, loner);
      assert.equal(Object.values(alone).reduce((sum, rows) => sum + rows.length, 0), 0, 'nothing of a customer without orders is left');
      const bought = await snapshot(bed.direct, buyer);
      assert.equal(bought.customers.length, 1, 'a customer with orders stays for the payments referring to them…');
      assert.ok(isHash(bought.customers[0]!.email) && bought.customers[0]!.phone === null && bought.customers[0]!.first_name === null, '…emptied');
      assert.ok(bought.orders.length > 0 && bought.orders.every((order) => order.shipping_name === null && order.shipping_address === null));
      assert.equal(bought.addresses.length, 0);
      same(bought.payments.map(unflagged), at.buyer!.payments.map(unflagged), 'payments follow the orders rule');
      same((await snapshot(bed.direct, neighbour)).orders, at.neighbour!.orders, 'a neighbour keeps their orders');
      for (const id of subjects) assert.equal((await bed.engine.subjects.get(id)).status, 'erased', 'shredded after its rows were reached');
      assert.equal(line(run, 'dataset:shop/customers', 'account_data').rows, 2);
      assert.match(line(run, 'dataset:shop/customers', 'account_data').note ?? '', /1 row\(s\) still referred to/);
    });
  });
}
