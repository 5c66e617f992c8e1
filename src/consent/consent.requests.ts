import type { ConsentForRequests } from '../requests/requests.systems.js';
import type { Actor } from '../staff/permissions.js';
import type { ConsentService } from './consent.service.js';

/**
 * Objection and consent withdrawal requests, written to the ledger as withdrawals: from then on
 * the vault refuses those purposes for the person, and the privacy center shows the choice.
 * Purposes the person cannot refuse (necessary, legal obligation) are left out, not errors: the
 * request's result lists what was applied.
 */
export class LedgerRequestConsent implements ConsentForRequests {
  constructor(private readonly consent: ConsentService) {}

  async withdraw(actor: Actor, subjectId: string, purposes: readonly string[]): Promise<void> {
    const refusable = purposes.filter((purpose) => this.consent.isRefusable(purpose));
    if (refusable.length === 0) return;
    await this.consent.record(actor, { holder: subjectId, source: actor.type === 'subject' ? 'privacy_center' : 'staff', choices: refusable.map((purpose) => ({ purpose, action: 'withdrawn' as const })) });
  }
}
