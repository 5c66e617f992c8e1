import type { AuditWriter } from '../audit/audit.types.js';
import { calendarDay, type Clock } from '../core/clock.js';
import type { Database } from '../core/db.js';
import type { Transaction } from 'kysely';
import type { Tables } from '../core/db.tables.js';
import { PledgeError } from '../core/errors.js';
import type { Actor } from '../staff/permissions.js';
import { addDuration, parseDuration } from './duration.js';
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
   * On the very first start, records this policy as the first version (with its audit entry);
   * after that, versions come only from publish(), so a process started with another file —
   * a command run without PLEDGE_POLICY, an edited file — never changes the history. Returns
   * this policy's stored version, undefined when it was never published.
   */
  async recordFirstVersion(audit?: AuditWriter): Promise<PolicyVersionRow | undefined> {
    this.recorded = await this.store.recordFirst(this.policy, this.clock.now(), async (trx, id) => {
      await audit?.appendWithin(trx, [
        { actor: { type: 'system', id: 'engine' }, action: 'policy.activated', target: { type: 'policy_version', id }, details: { version: this.policy.version, hash: this.policy.hash } },
      ]);
    });
    return this.recorded;
  }

  /** This policy's stored version: undefined when the file in use was never published. */
  get publishedVersion(): PolicyVersionRow | undefined {
    return this.recorded;
  }

  /**
   * What a server must tell its operator when the policy it enforces is not the one people
   * were told about: a file never published (its changes were never announced), or a
   * published version other than the one in force today (its effective date has not come, or
   * a later one's has). Undefined when they agree. `file` names the policy file in the advice.
   */
  async publicationWarning(file: string): Promise<string | undefined> {
    const inForce = await this.activeVersionNow();
    const named = (row: PolicyVersionRow) => `version ${row.version} (${row.id}, effective ${row.effectiveDate})`;
    if (!this.recorded) {
      return `the policy in use (${file}, version ${this.policy.version}) was never published, so the people it covers were not told of its changes${inForce ? `; the published version in force is ${named(inForce)}` : ''}. Publish it with: pledge policy publish ${file} --effective YYYY-MM-DD`;
    }
    if (inForce && inForce.hash !== this.policy.hash) {
      return `this server enforces policy ${named(this.recorded)}, but the version in force today is ${named(inForce)}: start the servers with that version's file`;
    }
    return undefined;
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
    if (!isCalendarDate(effectiveDate)) throw new PledgeError('invalid_effective_date', `the effective date must be a calendar date written YYYY-MM-DD, not "${effectiveDate.slice(0, 40)}"`);
    let published: PublishedVersion | undefined;
    const { row, created } = await this.store.publish(policy, effectiveDate, this.clock.now(), async (trx, stored, previous) => {
      const before = previous ? new Policy(JSON.parse(previous.document) as PolicyDocument) : undefined;
      const changes = before ? diffPolicies(before, policy) : [];
      published = { version: stored, previous, changes, material: isMaterial(changes), policy };
      if (published.material) this.requireAdvanceNotice(effectiveDate, before!);
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

  /**
   * A material change cannot take effect before today, nor before the advance notice the
   * policy in force promised ("we tell you at least 30 days before"): notices sent today
   * must reach people before the change applies to them.
   */
  private requireAdvanceNotice(effectiveDate: string, before: Policy): void {
    const notice = before.document.changes?.advance_notice;
    const today = new Date(`${this.clock.now().toISOString().slice(0, 10)}T00:00:00Z`);
    const earliest = (notice ? addDuration(today, parseDuration(notice)!) : today).toISOString().slice(0, 10);
    if (effectiveDate < earliest) {
      throw new PledgeError(
        'effective_date_too_early',
        `this version changes the policy materially, so it cannot take effect on ${effectiveDate}: ${notice ? `the policy in force promises ${notice} of advance notice` : 'a material change cannot apply retroactively'}; the earliest effective date is ${earliest} (give it with --effective)`,
        { details: { earliest } },
      );
    }
  }

  getVersion(id: string): Promise<PolicyVersionDocument | undefined> {
    return this.store.get(id);
  }

  /** The version in force now: the latest published whose effective date has come. */
  activeVersionNow(): Promise<PolicyVersionRow | undefined> {
    return this.store.activeOn(this.clock.now().toISOString().slice(0, 10));
  }
}

/** YYYY-MM-DD naming a day that exists (see calendarDay). */
export function isCalendarDate(text: string): boolean {
  return calendarDay(text) !== undefined;
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
