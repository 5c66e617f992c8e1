import type { Transaction } from 'kysely';
import type { Tables } from '../core/db.tables.js';
import type { Actor } from '../staff/permissions.js';

/** A value allowed in audit details: ids, codes, counts, category names — never personal data. */
export type AuditDetailValue = string | number | boolean | null | readonly string[];

/**
 * One thing that happened: who (actor), did what (action, e.g. `data.read`), to which record
 * (target), for which purpose. Details carry ids, category names, counts and codes only.
 */
export interface AuditEvent {
  actor: Actor;
  action: string;
  target?: { type: string; id: string };
  purpose?: string;
  details?: Record<string, AuditDetailValue>;
}

/** How domains write to the audit chain. */
export interface AuditWriter {
  /**
   * Appends inside the caller's transaction, so the entry commits or rolls back together with
   * the change it describes (every write of personal data).
   */
  appendWithin(trx: Transaction<Tables>, events: readonly AuditEvent[]): Promise<void>;
  /**
   * Appends durably on its own and resolves once stored (reads: the data is returned only
   * after its entry is written). Concurrent calls are grouped into one transaction.
   */
  record(events: readonly AuditEvent[]): Promise<void>;
  /**
   * PostgreSQL: the entries of `events` written by a statement of the caller's own together with
   * its rows, or undefined when that is not available (then use a transaction and appendWithin).
   */
  statementAppend?(events: readonly AuditEvent[]): StatementAppend | undefined;
}

/** A row of the chain an append returns: n = 0 is the head it followed, then the new entries. */
export interface ChainLink {
  n: number;
  seq: number;
  hash: string;
}

/** An audit append riding in a caller's statement (AuditService.statementAppend). */
export interface StatementAppend {
  /**
   * The append's common table expressions, the same text for every append (a caller may build
   * its statement once); nothing is appended unless `guard` (SQL) holds. Guard the caller's own
   * writes with `exists (select 1 from chain)`: nothing is kept without its entries.
   */
  ctes(guard?: string): string;
  /** The values of $1 and $2 of those expressions: the caller's own parameters start at $3. */
  parameters: readonly [string, string];
  /** Checks the chain rows the statement selected (n, seq, hash) and writes the checkpoints due. */
  settle(chain: readonly ChainLink[]): Promise<void>;
}
