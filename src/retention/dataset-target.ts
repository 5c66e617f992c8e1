import { approximateDays } from '../policy/duration.js';
import type { Actor } from '../staff/permissions.js';
import type { IdentityInput } from '../subjects/subjects.service.js';
import { cutoffFor, effectiveDuration, type RetentionRules, type ResolvedRule } from './retention.rules.js';
import type { RetentionOutcome, RetentionTarget, SweepContext } from './retention.target.js';

/**
 * What retention needs of a connected datastore: remove (or anonymise) the rows of one
 * collection whose timestamp column is before `before`. The datasets domain provides it
 * (DatasetsService.expire); any object of this shape will do.
 */
export interface DatasetExpirer {
  expire(
    datastoreId: string,
    collection: string,
    options: { before: Date; action: 'delete' | 'anonymize'; dryRun: boolean; batchSize?: number; onProgress?: (rows: number) => void; skip?: ReadonlySet<string> },
  ): Promise<{ rows: number; skipped?: number }>;
  /** Keys of the collection's rows that belong to these people (one identity list each). */
  heldRowKeys(datastoreId: string, collection: string, people: ReadonlyArray<IdentityInput[]>, actor?: Actor): Promise<ReadonlySet<string>>;
}

/** The identities of the subjects under a legal hold, one list a subject (read through the vault, audited). */
export type HeldIdentities = (actor: Actor, subjectIds: readonly string[]) => Promise<IdentityInput[][]>;

/** A dataset collection with a timestamp column, and the categories of its fields. */
export interface DatasetCollectionRef {
  datastore: string;
  collection: string;
  categories: readonly string[];
}

/**
 * A dataset collection as a retention target. A row carries several categories but has one
 * timestamp, so the whole row follows the rule that keeps data longest among its categories
 * (no category is removed before its own rule allows). Only rules triggered by collection
 * apply; a collection whose governing rules count from the last activity or the closing of an
 * account is reported and left alone. The rows of people under a legal hold are found from
 * their identities (the planner's walk) and left alone.
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

  /** The rule keeping the row longest, or why there is none to apply. */
  private governing(): { resolved: ResolvedRule; category: string } | { note: string } {
    let chosen: { resolved: ResolvedRule; category: string } | undefined;
    for (const category of this.ref.categories) {
      // Rows are not tied to subject kinds: the rule for everyone governs, else the first.
      const candidates = this.rules.candidates(category);
      const resolved = candidates.find((candidate) => !candidate.kinds) ?? candidates[0];
      if (!resolved) return { note: `no retention rule covers ${category}` };
      if (resolved.rule.trigger !== 'collected') return { note: `rule ${resolved.rule.id} counts from ${resolved.rule.trigger}, which dataset rows do not record` };
      if (!chosen || approximateDays(effectiveDuration(resolved)) > approximateDays(effectiveDuration(chosen.resolved))) chosen = { resolved, category };
    }
    return chosen ?? { note: 'the collection declares no categories' };
  }

  private async run(context: SweepContext, dryRun: boolean, onProgress?: (rows: number) => void): Promise<RetentionOutcome[]> {
    const governing = this.governing();
    const base = { target: this.id, keptByException: 0, skippedByHold: 0 };
    if ('note' in governing) return [{ ...base, rule: '—', category: this.ref.categories.join(', '), action: 'keep', trigger: null, rows: 0, note: governing.note }];
    const { resolved, category } = governing;
    const action = resolved.rule.action;
    let reported = 0;
    const progress = onProgress
      ? (rows: number) => {
          onProgress(rows - reported);
          reported = rows;
        }
      : undefined;
    const skip = context.held.length > 0 ? await this.datasets.heldRowKeys(this.ref.datastore, this.ref.collection, await this.heldIdentities(context.actor, context.held), context.actor) : undefined;
    const { rows, skipped = 0 } = await this.datasets.expire(this.ref.datastore, this.ref.collection, {
      before: cutoffFor(context.now, effectiveDuration(resolved)),
      action,
      dryRun,
      batchSize: context.batchSize,
      ...(progress ? { onProgress: progress } : {}),
      ...(skip ? { skip } : {}),
    });
    let keptByException = 0;
    if (resolved.exception) {
      const pastRule = await this.datasets.expire(this.ref.datastore, this.ref.collection, { before: cutoffFor(context.now, resolved.duration), action, dryRun: true, ...(skip ? { skip } : {}) });
      keptByException = pastRule.rows - (dryRun ? rows : 0);
    }
    return [
      {
        ...base,
        rule: resolved.rule.id,
        category,
        action,
        trigger: resolved.rule.trigger,
        rows,
        keptByException,
        skippedByHold: skipped,
        ...(resolved.exception ? { exception: resolved.exception.id } : {}),
      },
    ];
  }

  plan(context: SweepContext): Promise<RetentionOutcome[]> {
    return this.run(context, true);
  }

  apply(context: SweepContext, onProgress: (rows: number) => void): Promise<RetentionOutcome[]> {
    return this.run(context, false, onProgress);
  }
}
