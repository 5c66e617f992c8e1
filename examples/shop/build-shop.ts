import { openSqlDatastore, type SqlDialectName, type SqlSession } from '../../src/datasets/datasets.sql.js';

/**
 * Builds the example shop database that examples/shop/pledge.yaml declares: customers,
 * addresses, orders, order items, payments, support tickets, newsletter sign-ups and log-in
 * history, on SQLite, PostgreSQL or MariaDB/MySQL, at any size. Deterministic: customer n is
 * always `customer<n>@shop.example` with the same orders, so tests and benchmarks can name
 * the people they look for. About 11.7 rows per customer (1,000,000 customers ≈ 11.7 million rows).
 *
 *   npm run build && node dist/examples/shop/build-shop.js --url sqlite:/tmp/shop.db --customers 100000
 *   node dist/examples/shop/build-shop.js --url postgres://postgres@127.0.0.1:5432/test --customers 1000
 *
 * Existing shop tables at that address are dropped first.
 */
/** Bumped whenever the tables change, so that cached shops (the benchmarks') are rebuilt. */
export const SHOP_SCHEMA_VERSION = 2;

export const SHOP_TABLES = ['login_history', 'newsletter_signups', 'support_tickets', 'payments', 'order_items', 'orders', 'addresses', 'customers'] as const;

export interface BuildOptions {
  customers: number;
  /** Customers per transaction. */
  batch?: number;
  onProgress?: (customers: number) => void;
}

export type ShopCounts = Record<(typeof SHOP_TABLES)[number], number>;

/** A small deterministic hash: the same customer always gets the same data. */
function pick(n: number, salt: number, modulo: number): number {
  // murmur3's finaliser over (n, salt): well mixed in every bit, so small moduli are fair.
  let x = (Math.imul(n, 0x9e3779b1) ^ Math.imul(salt + 1, 0x85ebca6b)) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b) >>> 0;
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35) >>> 0;
  x ^= x >>> 16;
  return (x >>> 0) % modulo;
}

export function shopEmail(customer: number): string {
  return `customer${customer}@shop.example`;
}

const FIRST = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'John', 'Radia', 'Ken'];
const LAST = ['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth', 'Allen', 'Backus', 'Perlman', 'Thompson'];
const CITIES = ['Portland', 'Lyon', 'Leeds', 'Graz', 'Porto', 'Turku', 'Ghent', 'Cork'];
const AGENTS = ['Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0', 'Mozilla/5.0 (Macintosh) Safari/605.1', 'Mozilla/5.0 (Windows NT 10.0) Chrome/131.0'];

function ddl(dialect: SqlDialectName): string[] {
  const id = dialect === 'sqlite' ? 'integer primary key' : 'bigint primary key';
  const ref = dialect === 'sqlite' ? 'integer' : 'bigint';
  const text = dialect === 'mysql' ? 'varchar(255)' : 'text';
  const long = dialect === 'mysql' ? 'text' : 'text';
  const time = dialect === 'postgres' ? 'timestamptz' : dialect === 'mysql' ? 'datetime(3)' : 'text';
  const bool = dialect === 'postgres' ? 'boolean not null default false' : 'integer not null default 0';
  const engine = dialect === 'mysql' ? ' engine=InnoDB' : '';
  return [
    `create table customers (id ${id}, email ${text} not null unique, phone ${text}, first_name ${text}, last_name ${text}, date_of_birth ${text}, created_at ${time} not null, updated_at ${time} not null)${engine}`,
    `create table addresses (id ${id}, customer_id ${ref} not null references customers (id), line1 ${text}, city ${text}, postcode ${text}, created_at ${time} not null)${engine}`,
    `create table orders (id ${id}, customer_id ${ref} not null references customers (id), status ${text} not null, total_cents integer not null, shipping_name ${text}, shipping_address ${text}, created_at ${time} not null)${engine}`,
    `create table order_items (id ${id}, order_id ${ref} not null references orders (id), product_sku ${text}, quantity integer not null, price_cents integer not null, gift_message ${long}, created_at ${time} not null)${engine}`,
    `create table payments (id ${id}, order_id ${ref} not null references orders (id), amount_cents integer, billing_name ${text}, card_last4 ${text}, restricted ${bool}, created_at ${time} not null)${engine}`,
    `create table support_tickets (id ${id}, customer_id ${ref} references customers (id), email ${text}, subject ${text}, body ${long}, created_at ${time} not null)${engine}`,
    `create table newsletter_signups (id ${id}, customer_id ${ref} references customers (id), email ${text} not null unique, ip_address ${text}, created_at ${time} not null)${engine}`,
    `create table login_history (id ${id}, customer_id ${ref} not null references customers (id), ip_address ${text}, user_agent ${text}, created_at ${time} not null)${engine}`,
  ];
}

// Created after the rows are in: building an index once is faster than maintaining it row by row.
const INDEXES = [
  'create index customers_phone on customers (phone)',
  'create index addresses_customer on addresses (customer_id)',
  'create index orders_customer on orders (customer_id)',
  'create index order_items_order on order_items (order_id)',
  'create index payments_order on payments (order_id)',
  'create index support_tickets_customer on support_tickets (customer_id)',
  'create index support_tickets_email on support_tickets (email)',
  'create index newsletter_signups_customer on newsletter_signups (customer_id)',
  'create index login_history_customer on login_history (customer_id)',
  'create index login_history_created on login_history (created_at)',
];

type Rows = Record<(typeof SHOP_TABLES)[number], unknown[][]>;

const COLUMNS: Record<(typeof SHOP_TABLES)[number], string[]> = {
  customers: ['id', 'email', 'phone', 'first_name', 'last_name', 'date_of_birth', 'created_at', 'updated_at'],
  addresses: ['id', 'customer_id', 'line1', 'city', 'postcode', 'created_at'],
  orders: ['id', 'customer_id', 'status', 'total_cents', 'shipping_name', 'shipping_address', 'created_at'],
  order_items: ['id', 'order_id', 'product_sku', 'quantity', 'price_cents', 'gift_message', 'created_at'],
  payments: ['id', 'order_id', 'amount_cents', 'billing_name', 'card_last4', 'created_at'],
  support_tickets: ['id', 'customer_id', 'email', 'subject', 'body', 'created_at'],
  newsletter_signups: ['id', 'customer_id', 'email', 'ip_address', 'created_at'],
  login_history: ['id', 'customer_id', 'ip_address', 'user_agent', 'created_at'],
};

const EPOCH = Date.UTC(2020, 0, 1);
const DAY = 86_400_000;

/**
 * The rows of customers [from, to). Ids of child rows are derived from the customer number
 * (customer n owns orders n*4+0…n*4+3, …) so any range can be built on its own.
 */
function generate(from: number, to: number, time: (ms: number) => unknown): Rows {
  const rows: Rows = { customers: [], addresses: [], orders: [], order_items: [], payments: [], support_tickets: [], newsletter_signups: [], login_history: [] };
  for (let n = from; n < to; n++) {
    const first = FIRST[pick(n, 1, FIRST.length)]!;
    const last = LAST[pick(n, 2, LAST.length)]!;
    const joined = EPOCH + pick(n, 3, 1500) * DAY;
    const city = CITIES[pick(n, 4, CITIES.length)]!;
    rows.customers.push([n, shopEmail(n), `+1555${String(n).padStart(7, '0')}`, first, last, `19${50 + pick(n, 5, 50)}-0${1 + pick(n, 6, 9)}-1${pick(n, 7, 9)}`, time(joined), time(joined + pick(n, 8, 300) * DAY)]);
    const street = `${1 + pick(n, 9, 200)} ${LAST[pick(n, 10, LAST.length)]} Street`;
    rows.addresses.push([n * 2, n, street, city, String(10000 + pick(n, 11, 89999)), time(joined)]);
    const orders = pick(n, 12, 5); // 0–4, two on average
    for (let o = 0; o < orders; o++) {
      const orderId = n * 4 + o;
      const placed = joined + (o + 1) * pick(n, 13 + o, 90) * DAY;
      const items = 1 + pick(orderId, 20, 2); // 1–2
      let total = 0;
      for (let i = 0; i < items; i++) {
        const price = 500 + pick(orderId, 21 + i, 4000);
        total += price;
        rows.order_items.push([orderId * 2 + i, orderId, `SKU-${pick(orderId, 30 + i, 5000)}`, 1, price, pick(orderId, 40 + i, 10) === 0 ? `Happy birthday, ${first}!` : null, time(placed)]);
      }
      rows.orders.push([orderId, n, 'delivered', total, `${first} ${last}`, `${street}, ${city}`, time(placed)]);
      rows.payments.push([orderId, orderId, total, `${first} ${last}`, String(1000 + pick(orderId, 50, 8999)), time(placed)]);
    }
    if (pick(n, 60, 10) < 3) rows.support_tickets.push([n, n, shopEmail(n), 'Where is my parcel?', `Hello, this is ${first}. My order has not arrived yet.`, time(joined + 10 * DAY)]);
    if (pick(n, 61, 10) < 4) rows.newsletter_signups.push([n, n, shopEmail(n), `198.51.${pick(n, 62, 255)}.${pick(n, 63, 255)}`, time(joined)]);
    const logins = pick(n, 64, 5); // 0–4
    for (let l = 0; l < logins; l++) rows.login_history.push([n * 4 + l, n, `203.0.${pick(n, 65 + l, 255)}.${pick(n, 70 + l, 255)}`, AGENTS[pick(n, 75 + l, AGENTS.length)]!, time(joined + l * 7 * DAY)]);
  }
  return rows;
}

async function insert(session: SqlSession, table: (typeof SHOP_TABLES)[number], rows: unknown[][]): Promise<void> {
  const columns = COLUMNS[table];
  const dialect = session.dialect;
  // Under every driver's limit of bound values per statement.
  const perStatement = Math.floor(30_000 / columns.length);
  for (let start = 0; start < rows.length; start += perStatement) {
    const chunk = rows.slice(start, start + perStatement);
    const values: unknown[] = [];
    const tuples = chunk.map((row) => `(${row.map((value) => { values.push(value); return dialect.placeholder(values.length); }).join(', ')})`);
    await session.execute(`insert into ${dialect.quote(table)} (${columns.map(dialect.quote).join(', ')}) values ${tuples.join(', ')}`, values);
  }
}

/** Builds the shop at `url`, replacing any shop tables there. */
export async function buildShop(url: string, options: BuildOptions): Promise<ShopCounts> {
  const store = openSqlDatastore('shop', url, { timeoutMs: 600_000, create: true });
  const dialect = store.dialect.name;
  const time = (ms: number) => (dialect === 'sqlite' ? new Date(ms).toISOString() : new Date(ms));
  const counts = Object.fromEntries(SHOP_TABLES.map((table) => [table, 0])) as ShopCounts;
  try {
    await store.read(async (session) => {
      if (dialect === 'sqlite') {
        // A throw-away build: no need for the journal to survive a crash.
        await session.execute('pragma journal_mode = off', []).catch(() => undefined);
        await session.execute('pragma synchronous = off', []).catch(() => undefined);
      }
      for (const table of SHOP_TABLES) await session.execute(`drop table if exists ${session.dialect.quote(table)}`, []);
      for (const statement of ddl(dialect)) await session.execute(statement, []);
    });
    const batch = options.batch ?? 5000;
    for (let from = 1; from <= options.customers; from += batch) {
      const to = Math.min(options.customers + 1, from + batch);
      const rows = generate(from, to, time);
      await store.write(async (session) => {
        // Parents first: the foreign keys are checked row by row.
        for (const table of [...SHOP_TABLES].reverse()) {
          await insert(session, table, rows[table]);
          counts[table] += rows[table].length;
        }
      });
      options.onProgress?.(to - 1);
    }
    await store.read(async (session) => {
      for (const statement of INDEXES) await session.execute(statement, []);
      if (dialect === 'postgres') await session.execute('analyze', []);
      if (dialect === 'sqlite') {
        await session.execute('analyze', []);
        // How an application would run it: write-ahead log, so readers and writers do not block each other.
        await session.query('pragma journal_mode = wal', []);
      }
      if (dialect === 'mysql') for (const table of SHOP_TABLES) await session.query(`analyze table ${session.dialect.quote(table)}`, []);
    });
    return counts;
  } finally {
    await store.close();
  }
}

function argument(name: string): string | undefined {
  const index = process.argv.indexOf(`--${name}`);
  return index === -1 ? undefined : process.argv[index + 1];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const url = argument('url') ?? 'sqlite:shop.db';
  const customers = Number(argument('customers') ?? 1000);
  if (!Number.isInteger(customers) || customers < 1) {
    console.error('usage: build-shop --url <sqlite:file | postgres://… | mysql://…> --customers N');
    process.exit(2);
  }
  const started = Date.now();
  const counts = await buildShop(url, {
    customers,
    onProgress: (done) => process.stderr.write(`\r${done.toLocaleString('en-US')} / ${customers.toLocaleString('en-US')} customers`),
  });
  const total = Object.values(counts).reduce((sum, count) => sum + count, 0);
  process.stderr.write('\n');
  console.log(`${total.toLocaleString('en-US')} rows in ${((Date.now() - started) / 1000).toFixed(1)} s: ${Object.entries(counts).map(([table, count]) => `${table} ${count}`).join(', ')}`);
}
