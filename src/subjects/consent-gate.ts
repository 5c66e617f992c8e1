import type { Policy } from '../policy/policy.model.js';

export interface ConsentDecision {
  allowed: boolean;
  /** Why, in words safe to show (no personal data). */
  reason: string;
}

/**
 * The one seam through which the vault asks "may purpose P be used for subject S now?".
 * The policy-default gate answers from the policy alone; the consent ledger replaces it with
 * each person's recorded decisions.
 */
export interface ConsentGate {
  decide(subjectId: string, purposeId: string): Promise<ConsentDecision>;
  /**
   * "May data of S go to recipient R for purpose P now?": R serves P, the person has not opted
   * out of sharing with R, and P is allowed.
   */
  decideSharing(subjectId: string, purposeId: string, recipientId: string): Promise<ConsentDecision>;
}

/** Opt-in purposes wait for a consent that cannot be recorded yet; opt-out and necessary ones apply. */
export class PolicyDefaultConsentGate implements ConsentGate {
  constructor(private readonly policy: Policy) {}

  async decide(_subjectId: string, purposeId: string): Promise<ConsentDecision> {
    const choice = this.policy.choiceOf(purposeId);
    if (choice === 'opt_in') return { allowed: false, reason: `purpose "${purposeId}" needs the person's consent, and none is recorded` };
    if (choice === undefined) return { allowed: false, reason: `purpose "${purposeId}" is not declared in the policy` };
    return { allowed: true, reason: choice === 'none' ? 'necessary for this purpose' : 'allowed until the person objects' };
  }

  /** Nobody has opted out of a recipient yet: a recipient serving the purpose follows the purpose. */
  async decideSharing(subjectId: string, purposeId: string, recipientId: string): Promise<ConsentDecision> {
    if (!this.policy.recipients.get(recipientId)?.purposes.includes(purposeId)) {
      return { allowed: false, reason: `recipient "${recipientId}" does not receive data for purpose "${purposeId}" under the policy` };
    }
    return this.decide(subjectId, purposeId);
  }
}
