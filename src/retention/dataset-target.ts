import type { ExpireOptions, ExpireResult } from '../datasets/datasets.service.js';
import type { Actor } from '../staff/permissions.js';
import type { IdentityInput } from '../subjects/subjects.service.js';
import { stepCutoffs, timestampSteps, type DatasetCollectionRef, type TimestampStep } from './dataset-rules.js';
import type { RetentionRules } from './retention.rules.js';
import type { RetentionOutcome, RetentionTarget, SweepContext } from './retention.target.js';

export type { DatasetCollectionRef } from './dataset-rules.js';

/**
 * What retention needs of a connected datastore: remove (or anonymise) the rows of one
 * collection whose timestamp column is before `before`. The datasets domain provides it
 * (DatasetsService.expire); any object of this shape will do.
 */
export interface DatasetExpirer {
  expire(datastoreId: string, collection: string, options: ExpireOptions): Promise<Pick<ExpireResult, 'rows'> & Partial<ExpireResult>>;
  /** Rows written in [from, before), marked restricted unless a dry run; undefined where the datastore cannot. */
  keepBetween?(datastoreId: string, collection: string, from: Date, before: Date, options: { dryRun: boolean; skip?: ReadonlySet<string> }): Promise<{ rows: number; restricted: number } | undefined>;
  /** Keys of the collection's rows that belong to these people (one identity list each). */
  heldRowKeys(datastoreId: string, collection: string, people: ReadonlyArray<IdentityInput[]>, actor?: Actor): Promise<ReadonlySet<string>>;
}

/** The identities of the subjects under a legal hold, one list a subject (read through the vault, audited). */
export type HeldIdentities = (actor: Actor, subjectIds: readonly string[]) => Promise<IdentityInput[][]>;

/**
 * A dataset collection's timestamp steps (see dataset-rules.ts): the fields whose rule counts
 * from collection expire with their row's timestamp. When every field of the collection
 * does, the whole row follows the field kept longest; otherwise those fields are erased and
 * the row stays for the others, which the steps by person (DatasetPeopleTarget) handle. A
 * row that another collection's rows still refer to is not deleted: its fields are erased
 * and the outcome's note counts it (the next sweep deletes it once nothing refers to it).
 * The rows of people under a legal hold are found from their identities (the planner's
 * walk) and left alone.
 *
 * onProgress of `expire` is read as "rows removed so far" in the current call.
 */
export class DatasetTarget implements RetentionTarget {
  readonly id: string;

  constructor(
    private readonly datasets: DatasetExpirer,
    private readonly ref: DatasetCollectionRef,
    private readonly rules: RetentionRules,
    private readonly heldIdentities: HeldIdentities,
  ) {
    this.id = `dataset:${ref.datastore}/${ref.collection}`;
  }

  private async run(context: SweepContext, dryRun: boolean, onProgress?: (rows: number) => void): Promise<RetentionOutcome[]> {
    const { steps, uncovered } = timestampSteps(this.rules, this.ref);
    const outcomes: RetentionOutcome[] = uncovered.map((category) => ({
      rule: '—',
      target: this.id,
      category,
      action: 'keep',
      trigger: null,
      rows: 0,
      keptByException: 0,
      skippedByHold: 0,
      note: `no retention rule covers ${category}`,
    }));
    if (steps.length === 0) return outcomes;
    const skip = context.held.length > 0 ? await this.datasets.heldRowKeys(this.ref.datastore, this.ref.collection, await this.heldIdentities(context.actor, context.held), context.actor) : undefined;
    for (const step of steps) {
      if (!dryRun) await context.heartbeat();
      outcomes.push(await this.step(step, context, dryRun, skip, onProgress));
    }
    return outcomes;
  }

  private async step(step: TimestampStep, context: SweepContext, dryRun: boolean, skip: ReadonlySet<string> | undefined, onProgress?: (rows: number) => void): Promise<RetentionOutcome> {
    const { resolved, action, exception } = step;
    let reported = 0;
    const progress = onProgress
      ? (rows: number) => {
          onProgress(rows - reported);
          reported = rows;
        }
      : undefined;
    const cutoffs = stepCutoffs(context.now, step);
    const common = { action, ...(skip ? { skip } : {}), ...(step.fields ? { fields: step.fields } : {}), actor: context.actor };
    const { rows, skipped = 0, referenced = 0 } = await this.datasets.expire(this.ref.datastore, this.ref.collection, {
      ...common,
      before: cutoffs.due,
      dryRun,
      batchSize: context.batchSize,
      ...(progress ? { onProgress: progress } : {}),
    });
    let keptByException = 0;
    if (exception) {
      // Rows past the rule but not past the exception: counted, and restricted, where the
      // datastore can; otherwise what the same expiry, at the rule's end, would still change.
      const kept = await this.datasets.keepBetween?.(this.ref.datastore, this.ref.collection, cutoffs.due, cutoffs.pastRule, { dryRun, ...(skip ? { skip } : {}) });
      if (kept !== undefined) {
        keptByException = kept.rows;
      } else {
        const pastRule = await this.datasets.expire(this.ref.datastore, this.ref.collection, { ...common, before: cutoffs.pastRule, dryRun: true });
        keptByException = pastRule.rows - (dryRun ? rows : 0);
      }
    }
    const notes: string[] = [];
    if (!step.wholeRow && step.fields) notes.push(`fields ${step.fields.join(', ')} erased; the rows stay for their other fields`);
    if (referenced > 0) notes.push(`${referenced.toLocaleString('en')} row(s) still referred to by other rows: fields erased, not deleted`);
    return {
      rule: resolved.rule.id,
      target: this.id,
      category: step.categories.join(', '),
      action,
      trigger: resolved.rule.trigger,
      rows,
      keptByException,
      skippedByHold: skipped,
      ...(exception ? { exception } : {}),
      ...(notes.length > 0 ? { note: notes.join('; ') } : {}),
    };
  }

  plan(context: SweepContext): Promise<RetentionOutcome[]> {
    return this.run(context, true);
  }

  apply(context: SweepContext, onProgress: (rows: number) => void): Promise<RetentionOutcome[]> {
    return this.run(context, false, onProgress);
  }
}
