import type { Transaction } from 'kysely';
import type { Tables } from '../core/db.tables.js';

/**
 * What comms asks of consent. Marketing is re-checked when the message is claimed for sending,
 * inside the claiming transaction: an implementation that reads the database must read
 * through `trx` when it is given (on SQLite the transaction holds the only connection).
 */
export interface MailConsent {
  mayReceive(subjectId: string, topicId: string, purposeId: string, trx?: Transaction<Tables>): Promise<boolean>;
  /** Told of every opt-out taken through an unsubscribe link (after comms has stored its own). */
  recordUnsubscribe(subjectId: string, topicId: string, evidence: UnsubscribeEvidence): Promise<void>;
  /**
   * Registers what comms does when a subject explicitly opts in to topics again: `lift` runs
   * inside the transaction that records the opt-in and returns the topics whose opt-out it
   * lifted. Without it, an unsubscribe could never be undone.
   */
  onOptIn?(lift: (trx: Transaction<Tables>, subjectId: string, topics: readonly string[], at: string) => Promise<string[]>): void;
}

export interface UnsubscribeEvidence {
  messageId: string;
  /** one_click: RFC 8058 POST from the mail client; page: the confirmation page's button. */
  method: 'one_click' | 'page';
  at: string;
}
