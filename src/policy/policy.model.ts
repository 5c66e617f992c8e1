import { createHash } from 'node:crypto';
import { parseDeadline, parseDuration, type Deadline, type Duration } from './duration.js';
import type { Choice, Purpose, PolicyDocument, Recipient, RetentionRule, RightType } from './policy.schema.js';
import { BUILT_IN_CATEGORIES, covers, type CategoryInfo } from './taxonomy.js';
import { deepFreeze } from '../core/freeze.js';

/** A purpose's choice, explicit or implied by its legal basis. */
export function effectiveChoice(purpose: Pick<Purpose, 'choice' | 'legal_basis'>): Choice {
  if (purpose.choice) return purpose.choice;
  if (purpose.legal_basis === 'consent') return 'opt_in';
  if (purpose.legal_basis === 'legitimate_interest') return 'opt_out';
  return 'none';
}

/** JSON with object keys sorted, so equal policies hash equally whatever their key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, child]) => child !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, child]) => `${JSON.stringify(key)}:${canonicalJson(child)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * A validated policy, frozen, with the look-ups the engine needs. Built only by the loader
 * (policy.load.ts) after every check passed, so references here always resolve.
 */
export class Policy {
  readonly document: PolicyDocument;
  /** sha256 of the canonical JSON of the document: identifies this exact policy. */
  readonly hash: string;
  readonly categories: ReadonlyMap<string, CategoryInfo>;
  readonly purposes: ReadonlyMap<string, Purpose>;
  readonly recipients: ReadonlyMap<string, Recipient>;
  /** Answers of purposeAllows, by purpose, then category (no key string built per question). */
  private readonly allowedUses = new Map<string, Map<string, boolean>>();
  /** The same for recipientAllows, by recipient. */
  private readonly allowedReceipts = new Map<string, Map<string, boolean>>();
  private readonly servedBy = new Map<string, readonly Recipient[]>();

  constructor(document: PolicyDocument) {
    this.document = deepFreeze(structuredClone(document));
    this.hash = createHash('sha256').update(canonicalJson(this.document)).digest('hex');
    const categories = new Map(BUILT_IN_CATEGORIES);
    for (const custom of this.document.categories ?? []) {
      categories.set(custom.id, { id: custom.id, name: custom.name, ...(custom.description ? { description: custom.description } : {}), ...(custom.sensitive ? { sensitive: true } : {}) });
    }
    this.categories = categories;
    this.purposes = new Map(this.document.purposes.map((purpose) => [purpose.id, purpose]));
    this.recipients = new Map((this.document.recipients ?? []).map((recipient) => [recipient.id, recipient]));
    for (const purpose of this.document.purposes) {
      this.servedBy.set(purpose.id, (this.document.recipients ?? []).filter((recipient) => recipient.purposes.includes(purpose.id)));
    }
  }

  get version(): string {
    return this.document.policy.version;
  }

  get effectiveDate(): string {
    return this.document.policy.effective_date;
  }

  get title(): string {
    return this.document.policy.title ?? `${this.document.organization.name} Privacy Policy`;
  }

  choiceOf(purposeId: string): Choice | undefined {
    const purpose = this.purposes.get(purposeId);
    return purpose ? effectiveChoice(purpose) : undefined;
  }

  /** May data of `category` be used for `purposeId` under this policy (consent aside)? */
  purposeAllows(purposeId: string, category: string): boolean {
    // Asked for every field of every read; a policy is immutable, so each answer is kept.
    return coveredBy(this.allowedUses, purposeId, this.purposes.get(purposeId)?.categories, category);
  }

  /** May data of `category` go to `recipientId` under this policy (its purpose aside)? */
  recipientAllows(recipientId: string, category: string): boolean {
    return coveredBy(this.allowedReceipts, recipientId, this.recipients.get(recipientId)?.categories, category);
  }

  /** The recipients that receive data for `purposeId` (none for an unknown purpose). */
  recipientsServing(purposeId: string): readonly Recipient[] {
    return this.servedBy.get(purposeId) ?? [];
  }

  /** Is `category` collected at all (from any source, about anyone)? */
  isCollected(category: string): boolean {
    return this.document.collection.some((entry) => entry.categories.some((reference) => covers(reference, category)));
  }

  /** Human name of a category, falling back to the nearest named ancestor. */
  categoryName(category: string): string {
    return this.categories.get(category)?.name ?? category;
  }

  /** Retention rules that apply to a category, with their parsed durations. */
  retentionFor(category: string): Array<{ rule: RetentionRule; duration: Duration }> {
    return this.document.retention
      .filter(
        (rule) =>
          (rule.categories ?? []).some((reference) => covers(reference, category)) ||
          (rule.purposes ?? []).some((purposeId) => this.purposeAllows(purposeId, category)),
      )
      .map((rule) => ({ rule, duration: parseDuration(rule.duration)! }));
  }

  deadlineFor(right: RightType): Deadline | undefined {
    const declared = this.document.rights.requests.find((request) => request.type === right);
    return declared ? parseDeadline(declared.deadline) : undefined;
  }

  /** Purposes a Global Privacy Control signal opts people out of (empty when not honoured). */
  gpcOptOuts(): readonly string[] {
    const gpc = this.document.signals?.gpc;
    return gpc?.honoured ? (gpc.opts_out_of ?? []) : [];
  }

  toJSON(): PolicyDocument {
    return this.document;
  }
}

/**
 * Whether `category` falls under one of `references` (false without any), remembered in
 * `answers` per owner (a purpose or a recipient). Categories come from stored rows and
 * requests: the answers kept per owner stay bounded.
 */
function coveredBy(answers: Map<string, Map<string, boolean>>, owner: string, references: readonly string[] | undefined, category: string): boolean {
  if (!references) return false;
  let known = answers.get(owner);
  if (!known) answers.set(owner, (known = new Map()));
  let allowed = known.get(category);
  if (allowed === undefined) {
    allowed = references.some((reference) => covers(reference, category));
    if (known.size < 10_000) known.set(category, allowed);
  }
  return allowed;
}
