import type { AuditWriter } from '../audit/audit.types.js';
import type { Clock } from '../core/clock.js';
import type { Database } from '../core/db.js';
import type { Policy } from './policy.model.js';
import { policyJsonSchema } from './policy.schema.js';
import { PolicyStore, type PolicyVersionRow } from './policy.store.js';
import { renderPolicy } from './render/render.js';

/**
 * The policy the engine runs with. The documents derived from it (HTML, Markdown, JSON, the
 * GPC resource) are rendered once at start: the policy cannot change under a running
 * process, so every request serves bytes that are already built.
 */
export class PolicyService {
  readonly policy: Policy;
  readonly html: string;
  readonly markdown: string;
  readonly json: string;
  readonly gpc: string;
  readonly schema: string;
  readonly etag: string;
  private readonly store: PolicyStore;
  private recorded: PolicyVersionRow | undefined;

  constructor(policy: Policy, database: Database, private readonly clock: Clock) {
    this.policy = policy;
    this.store = new PolicyStore(database);
    this.html = renderPolicy(policy, 'html');
    this.markdown = renderPolicy(policy, 'md');
    this.json = JSON.stringify({ version: policy.version, effective_date: policy.effectiveDate, hash: policy.hash, policy: policy.document });
    this.gpc = JSON.stringify(gpcResource(policy));
    this.schema = JSON.stringify(policyJsonSchema(), null, 2);
    this.etag = `"${policy.hash.slice(0, 32)}"`;
  }

  /**
   * Remembers this policy in the database (history of what the engine enforced, and when);
   * the first time a policy is seen, the change is written to the audit chain with it.
   */
  async recordActiveVersion(audit?: AuditWriter): Promise<PolicyVersionRow> {
    this.recorded = await this.store.record(this.policy, this.clock.now(), async (trx, id) => {
      await audit?.appendWithin(trx, [
        { actor: { type: 'system', id: 'engine' }, action: 'policy.activated', target: { type: 'policy_version', id }, details: { version: this.policy.version, hash: this.policy.hash } },
      ]);
    });
    return this.recorded;
  }

  get activeVersion(): PolicyVersionRow | undefined {
    return this.recorded;
  }

  listVersions(): Promise<PolicyVersionRow[]> {
    return this.store.list();
  }
}

/**
 * The Global Privacy Control well-known resource: `gpc` says whether the site honours the
 * signal, `lastUpdate` when that statement last changed (the policy's effective date).
 */
export function gpcResource(policy: Policy): { gpc: boolean; lastUpdate: string } {
  return { gpc: policy.gpcOptOuts().length > 0, lastUpdate: policy.effectiveDate };
}
