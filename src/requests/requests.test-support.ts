import { loadSqlite } from '../core/sqlite.js';
import type { IdentityInput } from '../subjects/subjects.service.js';
import type { RequestEvent, RequestNotice, RequestNotifier } from './requests.notifier.js';
import type { CorrectionResult, DatastoreHandler, ErasureResult, FindSummary, FoundRow, HandlerContext } from './requests.systems.js';

/**
 * Test parts for requests: a notifier that records what would be sent, and a second datastore
 * — a real SQLite file of a small shop (customers and their invoices) — so that execution across
 * several datastores, retries and crash-resume run against a real database, not a mock.
 */
export class RecordingNotifier implements RequestNotifier {
  readonly codes: Array<{ requestId: string; code: string; address: string }> = [];
  readonly notices: Array<{ requestId: string; event: RequestEvent; to: 'person' | 'staff'; links?: Record<string, string> }> = [];

  async sendVerificationCode(notice: RequestNotice, code: string, address: string): Promise<void> {
    this.codes.push({ requestId: notice.requestId, code, address });
  }

  async notify(notice: RequestNotice, event: RequestEvent, address: string | undefined): Promise<void> {
    this.notices.push({ requestId: notice.requestId, event, to: address === undefined ? 'staff' : 'person', ...(notice.links ? { links: notice.links } : {}) });
  }

  lastCode(requestId: string): string | undefined {
    return this.codes.filter((entry) => entry.requestId === requestId).at(-1)?.code;
  }
}

type Connection = InstanceType<ReturnType<typeof loadSqlite>>;

/** Creates the shop database file with its two tables. */
export function createShopDatabase(file: string, customers: Array<{ email: string; name: string; phone: string; invoices: Array<{ amount: number; card: string }> }>): void {
  const SQLite = loadSqlite();
  const db = new SQLite(file);
  try {
    db.exec(`create table customers (id integer primary key, email text unique not null, name text, phone text);
             create table invoices (id integer primary key, customer_id integer references customers(id), amount integer not null, card_last4 text);`);
    for (const customer of customers) {
      const id = Number(db.prepare('insert into customers (email, name, phone) values (?, ?, ?)').run(customer.email, customer.name, customer.phone).lastInsertRowid);
      for (const invoice of customer.invoices) db.prepare('insert into invoices (customer_id, amount, card_last4) values (?, ?, ?)').run(id, invoice.amount, invoice.card);
    }
  } finally {
    db.close();
  }
}

/**
 * The shop as a datastore. It opens its file for each operation and refuses to create it, so a
 * test that moves the file away makes it fail as a real database that is down would.
 * `duringErase` runs in the middle of an erasure's transaction (after the customers are
 * deleted, before invoices are anonymised): the crash test kills the process there.
 */
export class ShopHandler implements DatastoreHandler {
  readonly id: string;
  calls = 0;

  constructor(
    private readonly file: string,
    options: { id?: string; duringErase?: () => Promise<void> } = {},
  ) {
    this.id = options.id ?? 'shop';
    this.duringErase = options.duringErase;
  }

  private readonly duringErase: (() => Promise<void>) | undefined;

  private open(): Connection {
    this.calls++;
    const SQLite = loadSqlite();
    return new SQLite(this.file, { fileMustExist: true });
  }

  private customers(db: Connection, identities: readonly IdentityInput[]): Array<{ id: number; email: string; name: string; phone: string }> {
    const emails = identities.filter((identity) => identity.kind === 'email').map((identity) => identity.value);
    if (emails.length === 0) return [];
    return db.prepare(`select id, email, name, phone from customers where email in (${emails.map(() => '?').join(',')}) order by id`).all(...emails) as Array<{ id: number; email: string; name: string; phone: string }>;
  }

  async find(identities: readonly IdentityInput[], sink: (row: FoundRow) => void | Promise<void>, _context: HandlerContext): Promise<FindSummary> {
    const db = this.open();
    try {
      let rows = 0;
      for (const customer of this.customers(db, identities)) {
        await sink({
          datastore: this.id,
          collection: 'customers',
          primaryKey: { id: customer.id },
          fields: [
            { name: 'email', category: 'user.contact.email', value: customer.email },
            { name: 'name', category: 'user.name', value: customer.name },
            { name: 'phone', category: 'user.contact.phone_number', value: customer.phone },
          ],
        });
        rows++;
        for (const invoice of db.prepare('select id, amount, card_last4 from invoices where customer_id = ? order by id').all(customer.id) as Array<{ id: number; amount: number; card_last4: string }>) {
          await sink({ datastore: this.id, collection: 'invoices', primaryKey: { id: invoice.id }, fields: [{ name: 'amount', category: 'user.behavior.purchase_history', value: invoice.amount }, { name: 'card_last4', category: 'user.payment', value: invoice.card_last4 }] });
          rows++;
        }
      }
      return { rows, collections: ['customers', 'invoices'] };
    } finally {
      db.close();
    }
  }

  async erase(identities: readonly IdentityInput[], options: HandlerContext & { dryRun: boolean }): Promise<ErasureResult> {
    const db = this.open();
    try {
      const result: ErasureResult = { dryRun: options.dryRun, changed: [], kept: [] };
      db.exec('begin immediate');
      try {
        const customers = this.customers(db, identities);
        const invoices = customers.flatMap((customer) => db.prepare('select id from invoices where customer_id = ? order by id').all(customer.id) as Array<{ id: number }>);
        for (const invoice of invoices) {
          result.changed.push({ collection: 'invoices', primaryKey: { id: invoice.id }, action: 'update', fields: ['customer_id'] });
          result.kept.push({ collection: 'invoices', primaryKey: { id: invoice.id }, fields: ['amount', 'card_last4'], exception: 'tax_records' });
        }
        for (const customer of customers) result.changed.push({ collection: 'customers', primaryKey: { id: customer.id }, action: 'delete', fields: ['email', 'name', 'phone'] });
        if (options.dryRun) {
          db.exec('rollback');
          return result;
        }
        for (const invoice of invoices) db.prepare('update invoices set customer_id = null where id = ?').run(invoice.id);
        await this.duringErase?.();
        for (const customer of customers) db.prepare('delete from customers where id = ?').run(customer.id);
        db.exec('commit');
      } catch (error) {
        if (db.inTransaction) db.exec('rollback');
        throw error;
      }
      return result;
    } finally {
      db.close();
    }
  }

  async correct(identities: readonly IdentityInput[], corrections: Record<string, unknown>, _context: HandlerContext): Promise<CorrectionResult> {
    const columns: Record<string, string> = { 'user.name': 'name', 'user.contact.phone_number': 'phone' };
    const db = this.open();
    try {
      const result: CorrectionResult = { changed: [], notHeld: Object.keys(corrections).filter((category) => !columns[category]).sort() };
      for (const customer of this.customers(db, identities)) {
        const fields = Object.keys(corrections).filter((category) => columns[category]);
        for (const category of fields) db.prepare(`update customers set ${columns[category]} = ? where id = ?`).run(String(corrections[category]), customer.id);
        if (fields.length > 0) result.changed.push({ collection: 'customers', primaryKey: { id: customer.id }, action: 'update', fields: fields.map((category) => columns[category]!) });
      }
      return result;
    } finally {
      db.close();
    }
  }
}

/** Reads the shop file directly (assertions). */
export function readShop(file: string): { customers: Array<{ id: number; email: string; name: string; phone: string }>; invoices: Array<{ id: number; customer_id: number | null; amount: number; card_last4: string }> } {
  const SQLite = loadSqlite();
  const db = new SQLite(file, { readonly: true, fileMustExist: true });
  try {
    return {
      customers: db.prepare('select * from customers order by id').all() as never,
      invoices: db.prepare('select * from invoices order by id').all() as never,
    };
  } finally {
    db.close();
  }
}
