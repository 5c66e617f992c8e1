import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { buildShop, SHOP_SCHEMA_VERSION, shopEmail } from '../examples/shop/build-shop.js';
import { systemClock } from '../src/core/clock.js';
import { compileDataset } from '../src/datasets/datasets.model.js';
import { walk } from '../src/datasets/datasets.planner.js';
import { datasetHashKey, DatasetsService } from '../src/datasets/datasets.service.js';
import { openSqlDatastore, type SqlDatastore, type SqlSession } from '../src/datasets/datasets.sql.js';
import { loadPolicyText, requirePolicy } from '../src/policy/policy.load.js';
import type { Actor } from '../src/staff/permissions.js';
import { createTestVault } from '../test/support/vault.js';
import { median, percentile, targetRow, type ResultRow } from './support.js';

/**
 * Connected datasets on the example shop (examples/shop), SQLite and PostgreSQL:
 *
 * - an access lookup of one person (planner, connector and audit entry included) against the
 *   same rows read by hand-written indexed SQL on the same driver, in the same run;
 * - 10,000 erasures;
 * - resident memory while streaming a person with a very large history (200,000 log-ins):
 *   it must stay flat.
 *
 * Building a million customers takes a while, so the shop is cached: a SQLite file under
 * .pledge/bench/, a PostgreSQL schema bench_shop_v<schema version>_<n>. Erasures take the next 10,000 customers
 * never erased from the lower half of the shop (lookups use the upper half); the shop is
 * rebuilt when the lower half is used up.
 *
 *   npm run bench datasets -- --customers 1000000
 */
const actor: Actor = { type: 'system', id: 'bench' };
const HEAVY_LOGINS = 200_000;

function shopPolicy() {
  return requirePolicy(loadPolicyText(readFileSync('examples/shop/pledge.yaml', 'utf8'), 'examples/shop/pledge.yaml'));
}

interface Shop {
  url: string;
  customers: number;
  /** The customer with HEAVY_LOGINS log-ins. */
  heavy: number;
  erasedUpTo: number;
  saveErasedUpTo(value: number): void;
  label: string;
}

async function addHeavyPerson(url: string, customers: number): Promise<number> {
  const store = openSqlDatastore('bench', url, { timeoutMs: 600_000, create: true });
  const heavy = customers + 1;
  const time = (ms: number) => (store.dialect.name === 'sqlite' ? new Date(ms).toISOString() : new Date(ms));
  try {
    await store.write(async (session) => {
      const p = (index: number) => session.dialect.placeholder(index);
      await session.execute(`insert into customers (id, email, phone, first_name, last_name, date_of_birth, created_at, updated_at) values (${p(1)}, ${p(2)}, null, 'Heavy', 'User', null, ${p(3)}, ${p(4)})`, [heavy, shopEmail(heavy), time(Date.UTC(2020, 0, 1)), time(Date.UTC(2020, 0, 1))]);
      for (let start = 0; start < HEAVY_LOGINS; start += 5000) {
        const values: unknown[] = [];
        const tuples: string[] = [];
        for (let i = start; i < start + 5000; i++) {
          values.push(heavy * 4 + 10_000_000_000 + i, heavy, `203.0.113.${i % 255}`, 'Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0', time(Date.UTC(2021, 0, 1) + i * 1000));
          const base = values.length - 5;
          tuples.push(`(${[1, 2, 3, 4, 5].map((offset) => p(base + offset)).join(', ')})`);
        }
        await session.execute(`insert into login_history (id, customer_id, ip_address, user_agent, created_at) values ${tuples.join(', ')}`, values);
      }
    });
  } finally {
    await store.close();
  }
  return heavy;
}

async function sqliteShop(customers: number): Promise<Shop> {
  const directory = path.resolve('.pledge/bench');
  mkdirSync(directory, { recursive: true });
  const file = path.join(directory, `shop-v${SHOP_SCHEMA_VERSION}-${customers}.db`);
  const marker = `${file}.json`;
  let state = existsSync(marker) && existsSync(file) ? (JSON.parse(readFileSync(marker, 'utf8')) as { erasedUpTo: number }) : undefined;
  if (state && state.erasedUpTo + 10_000 > customers / 2) state = undefined;
  if (!state) {
    console.log(`building the SQLite shop with ${customers.toLocaleString('en-US')} customers (cached in ${path.relative(process.cwd(), file)})…`);
    await buildShop(`sqlite:${file}`, { customers });
    await addHeavyPerson(`sqlite:${file}`, customers);
    state = { erasedUpTo: 0 };
    writeFileSync(marker, JSON.stringify(state));
  }
  return {
    url: `sqlite:${file}`,
    customers,
    heavy: customers + 1,
    erasedUpTo: state.erasedUpTo,
    saveErasedUpTo: (value) => writeFileSync(marker, JSON.stringify({ erasedUpTo: value })),
    label: 'SQLite',
  };
}

async function postgresShop(base: string, customers: number): Promise<Shop> {
  const schema = `bench_shop_v${SHOP_SCHEMA_VERSION}_${customers}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  try {
    const found = await admin.query(`select erased_up_to from ${schema}.bench_state`).catch(() => undefined);
    let erasedUpTo = found?.rows[0] ? Number(found.rows[0].erased_up_to) : undefined;
    if (erasedUpTo !== undefined && erasedUpTo + 10_000 > customers / 2) erasedUpTo = undefined;
    const url = new URL(base);
    url.searchParams.set('options', `-c search_path=${schema}`);
    if (erasedUpTo === undefined) {
      console.log(`building the PostgreSQL shop with ${customers.toLocaleString('en-US')} customers (cached in schema ${schema})…`);
      await admin.query(`drop schema if exists ${schema} cascade`);
      await admin.query(`create schema ${schema}`);
      await buildShop(url.toString(), { customers });
      await addHeavyPerson(url.toString(), customers);
      await admin.query(`create table ${schema}.bench_state (erased_up_to bigint not null)`);
      await admin.query(`insert into ${schema}.bench_state values (0)`);
      erasedUpTo = 0;
    }
    return {
      url: url.toString(),
      customers,
      heavy: customers + 1,
      erasedUpTo,
      saveErasedUpTo: () => {},
      label: 'PostgreSQL',
    };
  } finally {
    await admin.end();
  }
}

/** The same rows as the planner's walk, read by hand with the indexes the shop has. */
async function handWritten(session: SqlSession, email: string): Promise<number> {
  const p = session.dialect.placeholder(1);
  const [customer] = await session.query(`select id, email, phone, first_name, last_name, date_of_birth from customers where email = ${p}`, [email]);
  if (!customer) return 0;
  const id = customer.id;
  let rows = 1;
  rows += (await session.query(`select id, line1, city, postcode from addresses where customer_id = ${p}`, [id])).length;
  rows += (await session.query(`select id, shipping_name, shipping_address from orders where customer_id = ${p}`, [id])).length;
  rows += (await session.query(`select i.id, i.product_sku, i.gift_message from order_items i join orders o on o.id = i.order_id where o.customer_id = ${p}`, [id])).length;
  rows += (await session.query(`select y.id, y.amount_cents, y.billing_name, y.card_last4, y.restricted from payments y join orders o on o.id = y.order_id where o.customer_id = ${p}`, [id])).length;
  rows += (await session.query(`select id, email, subject, body from support_tickets where customer_id = ${p} or email = ${session.dialect.placeholder(2)}`, [id, email])).length;
  rows += (await session.query(`select id, email, ip_address from newsletter_signups where customer_id = ${p} or email = ${session.dialect.placeholder(2)}`, [id, email])).length;
  rows += (await session.query(`select id, ip_address, user_agent from login_history where customer_id = ${p}`, [id])).length;
  return rows;
}

async function benchShop(shop: Shop): Promise<ResultRow[]> {
  const policy = shopPolicy();
  const vault = await createTestVault('sqlite', { policy, clock: systemClock });
  const datasets = new DatasetsService({ policy, env: { SHOP_DATABASE_URL: shop.url }, audit: vault.audit, clock: systemClock, hashKey: datasetHashKey(vault.keyring) });
  const direct: SqlDatastore = openSqlDatastore('bench', shop.url, { timeoutMs: 60_000 });
  const rows: ResultRow[] = [];
  try {
    // (a) Access lookups of people from the upper half, alternating service and hand-written SQL.
    const people = Array.from({ length: 300 }, (_, index) => Math.floor(shop.customers / 2) + 1 + ((index * 7919) % Math.floor(shop.customers / 2)));
    const service: number[] = [];
    const planner: number[] = [];
    const manual: number[] = [];
    const model = compileDataset(policy.document.datasets![0]!);
    for (const [index, person] of people.entries()) {
      const email = shopEmail(person);
      const measure = async (fn: () => Promise<unknown>) => {
        const start = performance.now();
        await fn();
        return performance.now() - start;
      };
      const viaService = () => datasets.find('shop', [{ kind: 'email', value: email }], () => {});
      const viaSql = () => direct.read((session) => handWritten(session, email));
      const viaPlanner = () => direct.read((session) => walk(session, model, [{ kind: 'email', value: email }], { lock: false, visit: () => {} }));
      if (index < 20) {
        await viaService();
        await viaPlanner();
        await viaSql();
        continue;
      }
      if (index % 2) {
        service.push(await measure(viaService));
        planner.push(await measure(viaPlanner));
        manual.push(await measure(viaSql));
      } else {
        manual.push(await measure(viaSql));
        planner.push(await measure(viaPlanner));
        service.push(await measure(viaService));
      }
    }
    const serviceMedian = median(service);
    const plannerMedian = median(planner);
    const manualMedian = median(manual);
    const ceiling = `${manualMedian.toFixed(2)} ms (hand-written indexed SQL, same driver)`;
    rows.push({
      benchmark: `access lookup of one person, planner + connector (${shop.label}, ${shop.customers.toLocaleString('en-US')} customers), median of ${planner.length}`,
      measured: `${plannerMedian.toFixed(2)} ms (p99 ${percentile(planner, 99).toFixed(1)} ms)`,
      ceiling,
      ratio: `${(plannerMedian / manualMedian).toFixed(2)}×`,
      target: '≤ 2×, ≤ 100 ms',
      verdict: plannerMedian <= 2 * manualMedian && plannerMedian <= 100 ? 'pass' : 'FAIL',
    });
    rows.push({
      benchmark: `the same through DatasetsService.find, with its audit entry (${shop.label})`,
      measured: `${serviceMedian.toFixed(2)} ms (p99 ${percentile(service, 99).toFixed(1)} ms)`,
      ceiling,
      ratio: `${(serviceMedian / manualMedian).toFixed(2)}×`,
      target: '≤ 100 ms',
      verdict: serviceMedian <= 100 ? 'pass' : 'FAIL',
    });

    // (b) Memory while streaming a person with 200,000 log-ins.
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 5);
    const started = performance.now();
    const summary = await datasets.find('shop', [{ kind: 'user_id', value: String(shop.heavy) }], () => {});
    const heavyMs = performance.now() - started;
    clearInterval(sampler);
    const growth = (peak - baseline) / 1024 / 1024;
    rows.push(
      targetRow(
        `stream one person with ${summary.rows.toLocaleString('en-US')} rows (${shop.label}): resident memory growth (peak RSS ${(peak / 1024 / 1024).toFixed(0)} MB), ${(heavyMs / 1000).toFixed(1)} s`,
        `+${growth.toFixed(1)} MB`,
        '≤ +50 MB (flat: one page per level)',
        growth <= 50,
      ),
    );

    // (c) 10,000 erasures of the next customers never erased, eight at a time (SQLite runs them one by one).
    const count = 10_000;
    const first = shop.erasedUpTo + 1;
    const erasedStart = performance.now();
    let next = first;
    let changed = 0;
    const worker = async () => {
      while (next < first + count) {
        const person = next++;
        const result = await datasets.erase('shop', [{ kind: 'email', value: shopEmail(person) }], { dryRun: false, actor });
        changed += result.counts.updated + result.counts.deleted;
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    const erasureSeconds = (performance.now() - erasedStart) / 1000;
    shop.saveErasedUpTo(first + count - 1);
    if (shop.label === 'PostgreSQL') await direct.read((session) => session.execute(`update bench_state set erased_up_to = ${session.dialect.placeholder(1)}`, [first + count - 1]));
    rows.push(
      targetRow(
        `10,000 erasures, 8 at a time, each one transaction with audit entry (${shop.label}, ${changed.toLocaleString('en-US')} rows changed; peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB)`,
        `${erasureSeconds.toFixed(1)} s`,
        '≤ 60 s',
        erasureSeconds <= 60,
      ),
    );
  } finally {
    await direct.close();
    await datasets.close();
    await vault.close();
  }
  return rows;
}

export async function benchDatasets(options: { customers: number; postgresUrl?: string }): Promise<ResultRow[]> {
  const rows = await benchShop(await sqliteShop(options.customers));
  if (options.postgresUrl) rows.push(...(await benchShop(await postgresShop(options.postgresUrl, options.customers))));
  return rows;
}
