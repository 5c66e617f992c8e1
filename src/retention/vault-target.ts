import type { Transaction } from 'kysely';
import type { Tables } from '../core/db.tables.js';
import { approximateDays, parseDuration, type Duration } from '../policy/duration.js';
import type { FieldRetentionQuery } from '../subjects/subjects.store.js';
import type { SubjectsService } from '../subjects/subjects.service.js';
import { cutoffFor, effectiveDuration, type RetentionRules, type ResolvedRule } from './retention.rules.js';
import type { RetentionOutcome, RetentionTarget, SweepContext } from './retention.target.js';

interface FieldStep {
  category: string;
  resolved: ResolvedRule;
  kinds: readonly string[] | undefined;
  exceptKinds: readonly string[];
}

/**
 * The vault as a retention target. Each category stored in the vault is governed by one rule
 * per subject-kind partition (RetentionRules.partitions); each becomes a set-based query on the
 * fields. Closed accounts with no field left are crypto-shredded as a whole — before the field
 * steps, so that what a dry run counts is exactly what the run then does; an account whose last
 * fields expire in one sweep is shredded by the next.
 */
export class VaultTarget implements RetentionTarget {
  readonly id = 'vault';

  constructor(
    private readonly subjects: SubjectsService,
    private readonly rules: RetentionRules,
    /** Records anonymised fields as counts, inside the batch's transaction. */
    private readonly recordAnonymized: (trx: Transaction<Tables>, category: string, removed: Array<{ purpose: string; collected_at: string }>) => Promise<void>,
  ) {}

  private async steps(): Promise<{ fields: FieldStep[]; uncovered: string[] }> {
    const fields: FieldStep[] = [];
    const uncovered: string[] = [];
    for (const category of (await this.subjects.storedCategories()).sort()) {
      const partitions = this.rules.partitions(category);
      if (partitions.length === 0) uncovered.push(category);
      for (const partition of partitions) fields.push({ category, ...partition });
    }
    return { fields, uncovered };
  }

  /** Closed accounts are shredded once the longest account_closed rule (with its exceptions) has run out. */
  private closedAccounts(now: Date): { rule: string; cutoff: string } {
    let longest: { rule: string; days: number; duration: Duration } | undefined;
    for (const rule of this.rules.policy.document.retention) {
      if (rule.trigger !== 'account_closed') continue;
      for (const text of [rule.duration, ...(rule.exceptions ?? []).map((exception) => exception.duration)]) {
        const duration = parseDuration(text)!;
        const days = approximateDays(duration);
        if (!longest || days > longest.days) longest = { rule: rule.id, days, duration };
      }
    }
    return { rule: longest?.rule ?? 'closed_accounts', cutoff: (longest ? cutoffFor(now, longest.duration) : now).toISOString() };
  }

  private query(step: FieldStep, cutoff: Date, subjects: { except?: readonly string[]; only?: readonly string[] }): FieldRetentionQuery {
    return {
      category: step.category,
      trigger: step.resolved.rule.trigger,
      cutoff: cutoff.toISOString(),
      kinds: step.kinds,
      exceptKinds: step.exceptKinds,
      exceptSubjects: subjects.except,
      onlySubjects: subjects.only,
    };
  }

  /** What stays behind after the step: rows kept by the exception, rows protected by holds. */
  private async leftOver(step: FieldStep, context: SweepContext): Promise<Pick<RetentionOutcome, 'keptByException' | 'skippedByHold'>> {
    const ruleCutoff = cutoffFor(context.now, step.resolved.duration);
    const finalCutoff = cutoffFor(context.now, effectiveDuration(step.resolved));
    const pastRule = step.resolved.exception ? await this.subjects.countExpiredFields(this.query(step, ruleCutoff, { except: context.held })) : 0;
    const pastAll = step.resolved.exception ? await this.subjects.countExpiredFields(this.query(step, finalCutoff, { except: context.held })) : 0;
    const held = context.held.length > 0 ? await this.subjects.countExpiredFields(this.query(step, finalCutoff, { only: context.held })) : 0;
    return { keptByException: pastRule - pastAll, skippedByHold: held };
  }

  private outcome(step: FieldStep, rows: number, left: Pick<RetentionOutcome, 'keptByException' | 'skippedByHold'>): RetentionOutcome {
    const { rule, exception } = step.resolved;
    return {
      rule: rule.id,
      target: this.id,
      category: step.category,
      action: rule.action,
      trigger: rule.trigger,
      rows,
      ...left,
      ...(exception ? { exception: exception.id } : {}),
      ...(step.kinds ? { note: `subjects of kind ${step.kinds.join(', ')}` } : {}),
    };
  }

  private uncoveredOutcome(category: string): RetentionOutcome {
    return { rule: '—', target: this.id, category, action: 'keep', trigger: null, rows: 0, keptByException: 0, skippedByHold: 0, note: 'no retention rule of the policy covers this category' };
  }

  async plan(context: SweepContext): Promise<RetentionOutcome[]> {
    const { fields, uncovered } = await this.steps();
    const closed = this.closedAccounts(context.now);
    const outcomes: RetentionOutcome[] = [this.closedOutcome(closed.rule, await this.subjects.countClosedWithoutFields(closed.cutoff, context.held), await this.heldClosed(closed.cutoff, context))];
    for (const step of fields) {
      const rows = await this.subjects.countExpiredFields(this.query(step, cutoffFor(context.now, effectiveDuration(step.resolved)), { except: context.held }));
      outcomes.push(this.outcome(step, rows, await this.leftOver(step, context)));
    }
    return [...outcomes, ...uncovered.map((category) => this.uncoveredOutcome(category))];
  }

  async apply(context: SweepContext, onProgress: (rows: number) => void): Promise<RetentionOutcome[]> {
    const { fields, uncovered } = await this.steps();
    const closed = this.closedAccounts(context.now);
    const erased = await this.subjects.eraseClosedWithoutFields(context.actor, closed.cutoff, context.held, { rule: closed.rule, batchSize: context.batchSize, onBatch: onProgress, signal: context.signal });
    const outcomes: RetentionOutcome[] = [this.closedOutcome(closed.rule, erased, await this.heldClosed(closed.cutoff, context))];
    for (const step of fields) {
      if (context.signal?.aborted) break;
      await context.heartbeat();
      const { rule, exception } = step.resolved;
      const rows = await this.subjects.removeExpiredFields(context.actor, this.query(step, cutoffFor(context.now, effectiveDuration(step.resolved)), { except: context.held }), {
        rule: rule.id,
        action: rule.action,
        exception: exception?.id,
        batchSize: context.batchSize,
        ...(rule.action === 'anonymize' ? { withinBatch: (trx: Transaction<Tables>, removed: Array<{ purpose: string; collected_at: string }>) => this.recordAnonymized(trx, step.category, removed) } : {}),
        onBatch: onProgress,
        signal: context.signal,
      });
      outcomes.push(this.outcome(step, rows, await this.leftOver(step, context)));
    }
    return [...outcomes, ...uncovered.map((category) => this.uncoveredOutcome(category))];
  }

  private heldClosed(cutoff: string, context: SweepContext): Promise<number> {
    return context.held.length > 0 ? this.subjects.countClosedWithoutFields(cutoff, [], context.held) : Promise.resolve(0);
  }

  private closedOutcome(rule: string, rows: number, skippedByHold: number): RetentionOutcome {
    return { rule, target: this.id, category: 'subject', action: 'erase', trigger: 'account_closed', rows, keptByException: 0, skippedByHold, note: 'closed accounts with no data left: key destroyed, identities removed' };
  }
}
