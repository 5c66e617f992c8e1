import type { Client, Notification } from 'pg';

/**
 * Changes to a PostgreSQL table, as they commit, on a connection of its own that LISTENs on a
 * channel of the tables' schema (`channel.schema`: a trigger of the table NOTIFYs it, see
 * migration 0011) — and the fence that makes a process's memory of that table safe to answer
 * from.
 *
 * The fence is an empty query on the listening connection. PostgreSQL signals every listening
 * session while a notifying transaction commits, before that commit is acknowledged to anyone,
 * and a session delivers the notifications it was signalled about before it says it is ready
 * for the next query. So when a fence sent after a request arrived comes back, every change
 * committed before the request arrived has been handed to `onChange`: whatever the process
 * still remembers is what the database holds. Changes of this process and of every other
 * process sharing the database arrive the same way.
 *
 * When the connection is lost, nothing is known of what was missed: `onReset` tells the owner
 * to forget everything, fences answer false (read the database) until the connection is back
 * and listening again, and `generation` moves on, so reads sent before cannot fill the memory.
 *
 *   const changes = new ChangeListener(connect, tablesAt, 'pledge_consent_state', forget, forgetAll);
 *   if (await changes.fence()) answerFromMemory(); else readTheDatabase();
 */
export class ChangeListener {
  private client: Client | undefined;
  private connecting: Promise<void> | undefined;
  private live = false;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryMs = RETRY_FIRST_MS;
  /** Fences asked since the last one left; they wait for the next. */
  private waiting: Array<(fenced: boolean) => void> = [];
  private fenceInFlight = false;
  private fenceScheduled = false;
  private resets = 0;
  /** `channel.schema`: what the trigger of the tables in this connection's schema NOTIFYs. */
  private schemaChannel = '';
  /**
   * Moves on with every change and every reset: a read that started at one generation may
   * fill the memory only if it is still the current one when the read lands.
   */
  generation = 0;

  constructor(
    private readonly connect: () => Promise<Client>,
    /** The database and schema of the tables, read on the main connections. */
    private readonly tablesAt: () => Promise<Where>,
    private readonly channel: string,
    private readonly onChange: (payload: string) => void,
    private readonly onReset: () => void,
  ) {}

  /** Listening since the last reset: a fence can answer true. Starts listening on first use. */
  isListening(): boolean {
    if (!this.live && !this.connecting && !this.retryTimer && !this.closed) this.start();
    return this.live;
  }

  /**
   * Resolves true once every change committed before the call has been passed to onChange;
   * false when the listener is not listening (the caller reads the database instead). Fences
   * asked in the same turn of the event loop share one round trip; one asked while a fence is
   * on its way waits for the next, which leaves a turn after it lands.
   */
  fence(): Promise<boolean> {
    if (!this.isListening()) return FALSE;
    return new Promise<boolean>((resolve) => {
      this.waiting.push(resolve);
      if (!this.fenceInFlight) this.scheduleFence();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.settleWaiting(false);
    await this.connecting?.catch(() => {});
    const client = this.client;
    this.client = undefined;
    this.live = false;
    await client?.end().catch(() => {});
  }

  private scheduleFence(): void {
    if (this.fenceScheduled) return;
    this.fenceScheduled = true;
    setImmediate(this.sendFence);
  }

  private readonly sendFence = (): void => {
    this.fenceScheduled = false;
    const client = this.client;
    const fenced = this.waiting;
    if (fenced.length === 0) return;
    this.waiting = [];
    if (!client || !this.live) {
      for (const resolve of fenced) resolve(false);
      return;
    }
    this.fenceInFlight = true;
    const resets = this.resets;
    let landed = false;
    // A connection that went silent (a firewall dropping it without a word) would hold every
    // question answered from memory: past the timeout it counts as lost.
    const timeout = setTimeout(() => {
      land(false);
      this.lost(client);
    }, FENCE_TIMEOUT_MS);
    const land = (ok: boolean): void => {
      if (landed) return;
      landed = true;
      clearTimeout(timeout);
      this.fenceInFlight = false;
      // Changes that came meanwhile were applied (that is the point); a reset was not a change.
      const fencedNow = ok && this.live && this.resets === resets;
      for (const resolve of fenced) resolve(fencedNow);
      if (this.waiting.length > 0) setImmediate(() => this.scheduleFence());
    };
    // The simple protocol's empty query: nothing to parse or plan, answered with
    // EmptyQueryResponse and ReadyForQuery, after any notification the session owes.
    client.query('').then(() => land(true), () => land(false));
  };

  private start(): void {
    this.connecting = this.open().finally(() => {
      this.connecting = undefined;
    });
  }

  private async open(): Promise<void> {
    let client: Client | undefined;
    try {
      client = await this.connect();
      client.on('notification', this.received);
      client.on('error', () => this.lost(client!));
      client.on('end', () => this.lost(client!));
      // The channel is the tables' schema's own (the trigger names it so): the schema and the
      // database are the main connections', and a listening connection that reaches another
      // database would hear nothing — then nothing is remembered.
      const [{ rows }, tables] = await Promise.all([client.query<Where>(WHERE_SQL), this.tablesAt()]);
      if (rows[0]!.database !== tables.database) throw new Error('the listening connection reaches another database');
      this.schemaChannel = `${this.channel}.${tables.schema}`;
      await client.query(`listen "${this.schemaChannel.replaceAll('"', '""')}"`);
      if (this.closed) {
        await client.end().catch(() => {});
        return;
      }
      this.client = client;
      // Whatever was remembered before LISTEN took effect may have missed a change.
      this.reset();
      this.live = true;
      this.retryMs = RETRY_FIRST_MS;
    } catch {
      if (client) await client.end().catch(() => {});
      this.retryLater();
    }
  }

  private readonly received = (message: Notification): void => {
    if (message.channel !== this.schemaChannel) return;
    this.generation++;
    this.onChange(message.payload ?? '');
  };

  private lost(client: Client): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.live = false;
    this.reset();
    this.settleWaiting(false);
    client.end().catch(() => {});
    this.retryLater();
  }

  private reset(): void {
    this.resets++;
    this.generation++;
    this.onReset();
  }

  private retryLater(): void {
    if (this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.closed) this.start();
    }, this.retryMs);
    this.retryTimer.unref();
    this.retryMs = Math.min(this.retryMs * 2, RETRY_LAST_MS);
  }

  private settleWaiting(fenced: boolean): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const resolve of waiting) resolve(fenced);
  }
}

const FALSE = Promise.resolve(false);

/** Where a connection's unqualified tables are. */
export interface Where {
  database: string;
  schema: string;
}
export const WHERE_SQL = 'select current_database() as database, current_schema() as schema';
/** How long a fence may take before its connection counts as lost (and the questions read the database). */
export const FENCE_TIMEOUT_MS = 2_000;
/** The first wait before listening again after the connection was lost or refused; it doubles up to the last. */
const RETRY_FIRST_MS = 250;
const RETRY_LAST_MS = 30_000;
