import type { AuditWriter } from '../audit/audit.types.js';
import type { Clock } from '../core/clock.js';
import type { Database } from '../core/db.js';
import type { Transaction } from 'kysely';
import type { Tables } from '../core/db.tables.js';
import type { Actor } from '../staff/permissions.js';
import { diffPolicies, isMaterial, type PolicyChange } from './policy.diff.js';
import { Policy } from './policy.model.js';
import type { PolicyDocument } from './policy.schema.js';
import { policyJsonSchema } from './policy.schema.js';
import { PolicyStore, type PolicyVersionDocument, type PolicyVersionRow } from './policy.store.js';
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

  // --- publication

  /**
   * Publishes `policy` as a new version taking effect on `effectiveDate` (history is kept;
   * publishing the same document again changes nothing). Compared with the version stored
   * before it, the changes decide whether people must be told: `onPublished` runs in the
   * publication's transaction with them (comms queues the notices there).
   */
  async publish(
    policy: Policy,
    effectiveDate: string,
    actor: Actor,
    audit: AuditWriter,
    onPublished?: (trx: Transaction<Tables>, published: PublishedVersion) => Promise<void>,
  ): Promise<PublishedVersion & { created: boolean }> {
    let published: PublishedVersion | undefined;
    const { row, created } = await this.store.publish(policy, effectiveDate, this.clock.now(), async (trx, stored, previous) => {
      const changes = previous ? diffPolicies(new Policy(JSON.parse(previous.document) as PolicyDocument), policy) : [];
      published = { version: stored, previous, changes, material: isMaterial(changes), policy };
      await audit.appendWithin(trx, [
        {
          actor,
          action: 'policy.published',
          target: { type: 'policy_version', id: stored.id },
          details: { version: policy.version, hash: policy.hash, effectiveDate, previous: previous?.id ?? null, changes: changes.length, material: published.material },
        },
      ]);
      if (onPublished) await onPublished(trx, published);
    });
    return { ...(published ?? { version: row, previous: undefined, changes: [], material: false, policy }), created };
  }

  getVersion(id: string): Promise<PolicyVersionDocument | undefined> {
    return this.store.get(id);
  }

  /** The version in force now: the latest published whose effective date has come. */
  activeVersionNow(): Promise<PolicyVersionRow | undefined> {
    return this.store.activeOn(this.clock.now().toISOString().slice(0, 10));
  }
}

export interface PublishedVersion {
  version: PolicyVersionRow;
  previous: PolicyVersionRow | undefined;
  changes: PolicyChange[];
  material: boolean;
  policy: Policy;
}

/**
 * The Global Privacy Control well-known resource: `gpc` says whether the site honours the
 * signal, `lastUpdate` when that statement last changed (the policy's effective date).
 */
export function gpcResource(policy: Policy): { gpc: boolean; lastUpdate: string } {
  return { gpc: policy.gpcOptOuts().length > 0, lastUpdate: policy.effectiveDate };
}
