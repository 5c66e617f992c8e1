import type { Transaction } from 'kysely';
import type { MailConsent } from '../comms/comms.consent.js';
import type { Tables } from '../core/db.tables.js';
import type { ConsentService, MailOptInHandler } from './consent.service.js';

/**
 * The outbox's view of the ledger. Marketing mail is re-checked inside the transaction that
 * claims it (so the read goes through `trx`: on SQLite it holds the only connection), and an
 * unsubscribe link is written to the ledger as a withdrawal with source email_link, so the
 * privacy center and the API show the same choice the mail footer made.
 */
export class LedgerMailConsent implements MailConsent {
  constructor(private readonly consent: ConsentService) {}

  async mayReceive(subjectId: string, topicId: string, purposeId: string, trx?: Transaction<Tables>): Promise<boolean> {
    if (this.consent.isMarketingTopic(topicId)) return this.consent.mayReceive(subjectId, topicId, trx);
    return (await this.consent.decide(subjectId, purposeId, trx)).allowed;
  }

  onOptIn(lift: MailOptInHandler): void {
    this.consent.onMailOptIn(lift);
  }

  async recordUnsubscribe(subjectId: string, topicId: string): Promise<void> {
    // Only marketing topics carry unsubscribe links; service mail has no choice to withdraw.
    if (this.consent.isMarketingTopic(topicId)) await this.consent.optOutByEmailLink(subjectId, topicId);
  }
}
