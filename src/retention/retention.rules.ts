import { addDuration, approximateDays, parseDuration, type Duration } from '../policy/duration.js';
import type { Policy } from '../policy/policy.model.js';
import type { RetentionRule } from '../policy/policy.schema.js';
import { covers } from '../policy/taxonomy.js';

/**
 * Which retention rule governs a category, and when its data expires. Pure functions of the
 * policy (and the clock passed in), shared by the sweep and by the vault's read path, so what
 * the sweep deletes and what a read hides can never disagree. docs/retention.md states the
 * same rules in words.
 *
 * When several rules cover a category, the first of this order governs it:
 *  1. the rule naming the most specific category (user.contact.email beats user.contact beats
 *     user; a rule reaching the category only through its purposes comes after any rule that
 *     names it);
 *  2. a rule limited to subject kinds before a rule for everyone (it applies only to subjects
 *     of those kinds; the others fall through to the next rule);
 *  3. the shorter duration (when in doubt, keep less);
 *  4. the order of the policy file.
 */
export type RetentionTrigger = RetentionRule['trigger'];
export type RetentionAction = RetentionRule['action'];

export interface ResolvedException {
  id: string;
  reason: 'legal_obligation' | 'legal_claims' | 'fraud_prevention';
  duration: Duration;
}

export interface ResolvedRule {
  rule: RetentionRule;
  duration: Duration;
  /** The exception keeping this category longer (the longest, when several cover it). */
  exception: ResolvedException | undefined;
  /** Subject kinds the rule is limited to; undefined: everyone. */
  kinds: readonly string[] | undefined;
  /** Depth of the most specific category reference covering the category; 0 through purposes only. */
  specificity: number;
}

/** The moment a trigger must have passed for data to be past `duration` at `now`. */
export function cutoffFor(now: Date, duration: Duration): Date {
  return addDuration(now, { years: -duration.years, months: -duration.months, weeks: -duration.weeks, days: -duration.days, hours: -duration.hours });
}

/** The duration after the trigger at which data of this category is actually removed. */
export function effectiveDuration(resolved: ResolvedRule): Duration {
  const { exception } = resolved;
  return exception && approximateDays(exception.duration) > approximateDays(resolved.duration) ? exception.duration : resolved.duration;
}

function depth(category: string): number {
  return category.split('.').length;
}

export class RetentionRules {
  private readonly resolved = new Map<string, readonly ResolvedRule[]>();

  constructor(readonly policy: Policy) {}

  /** Every rule covering `category`, in the order that decides which governs (see above). */
  candidates(category: string): readonly ResolvedRule[] {
    const cached = this.resolved.get(category);
    if (cached) return cached;
    const list = this.policy.document.retention.flatMap((rule, index) => {
      const named = (rule.categories ?? []).filter((reference) => covers(reference, category));
      const viaPurpose = (rule.purposes ?? []).some((purposeId) => this.policy.purposeAllows(purposeId, category));
      if (named.length === 0 && !viaPurpose) return [];
      const duration = parseDuration(rule.duration)!;
      let exception: ResolvedException | undefined;
      for (const candidate of rule.exceptions ?? []) {
        if (!candidate.categories.some((reference) => covers(reference, category))) continue;
        const extended = parseDuration(candidate.duration)!;
        if (!exception || approximateDays(extended) > approximateDays(exception.duration)) exception = { id: candidate.id, reason: candidate.reason, duration: extended };
      }
      const resolved: ResolvedRule = { rule, duration, exception, kinds: rule.subjects, specificity: named.length ? Math.max(...named.map(depth)) : 0 };
      return [{ resolved, index }];
    });
    list.sort(
      (a, b) =>
        b.resolved.specificity - a.resolved.specificity ||
        Number(b.resolved.kinds !== undefined) - Number(a.resolved.kinds !== undefined) ||
        approximateDays(a.resolved.duration) - approximateDays(b.resolved.duration) ||
        a.index - b.index,
    );
    const ordered = list.map((entry) => entry.resolved);
    this.resolved.set(category, ordered);
    return ordered;
  }

  /** Could any rule keep this category under an exception (and so restrict it)? A cheap first test for reads. */
  mayRestrict(category: string): boolean {
    return this.candidates(category).some((candidate) => candidate.exception !== undefined);
  }

  /** The rule governing `category` for a subject of these kinds, if any. */
  ruleFor(category: string, kinds: readonly string[]): ResolvedRule | undefined {
    return this.candidates(category).find((candidate) => !candidate.kinds || candidate.kinds.some((kind) => kinds.includes(kind)));
  }

  /**
   * The rules governing `category`, each with the subject kinds it applies to: `kinds` (only
   * subjects having one of them; undefined: any) minus `exceptKinds` (subjects already governed
   * by an earlier, more specific rule). The sweep turns each into one set-based query.
   */
  partitions(category: string): Array<{ resolved: ResolvedRule; kinds: readonly string[] | undefined; exceptKinds: readonly string[] }> {
    const out: Array<{ resolved: ResolvedRule; kinds: readonly string[] | undefined; exceptKinds: readonly string[] }> = [];
    const claimed: string[] = [];
    for (const resolved of this.candidates(category)) {
      if (resolved.kinds) {
        const open = resolved.kinds.filter((kind) => !claimed.includes(kind));
        if (open.length === 0) continue;
        out.push({ resolved, kinds: open, exceptKinds: [...claimed] });
        claimed.push(...open);
      } else {
        out.push({ resolved, kinds: undefined, exceptKinds: [...claimed] });
        break;
      }
    }
    return out;
  }
}

/** When the clock of `trigger` started for one field, or undefined when it has not started. */
export function triggerTime(
  trigger: RetentionTrigger,
  field: { updated_at: string },
  subject: { last_activity_at: string; status: string; closed_at: string | null },
): string | undefined {
  switch (trigger) {
    case 'collected':
      return field.updated_at;
    case 'last_activity':
      return subject.last_activity_at;
    case 'account_closed':
      return subject.status === 'closed' && subject.closed_at ? subject.closed_at : undefined;
  }
}

/**
 * Is this field past its rule and kept only by an exception? Such data is restricted: it may
 * serve only purposes whose legal basis is a legal obligation, until the exception ends too.
 */
export function keptOnlyByException(
  rules: RetentionRules,
  now: Date,
  field: { category: string; updated_at: string },
  subject: { kinds: readonly string[]; last_activity_at: string; status: string; closed_at: string | null },
): boolean {
  const resolved = rules.ruleFor(field.category, subject.kinds);
  if (!resolved?.exception) return false;
  const started = triggerTime(resolved.rule.trigger, field, subject);
  return started !== undefined && started <= cutoffFor(now, resolved.duration).toISOString();
}
