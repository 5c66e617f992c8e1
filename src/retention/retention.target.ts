import type { Actor } from '../staff/permissions.js';
import type { RetentionAction, RetentionTrigger } from './retention.rules.js';

/** One line of a sweep's summary: what a rule did (or would do) to one category of one target. */
export interface RetentionOutcome {
  rule: string;
  /** `vault`, or `dataset:<datastore>/<collection>`. */
  target: string;
  /** The data category; `subject` for closed accounts crypto-shredded as a whole. */
  category: string;
  action: RetentionAction | 'erase' | 'keep';
  trigger: RetentionTrigger | null;
  /** Rows removed (or, in a dry run, that would be). */
  rows: number;
  /** Rows past their rule but kept, restricted, by a legal exception. */
  keptByException: number;
  /** Rows past retention left alone because their subject is under a legal hold. */
  skippedByHold: number;
  exception?: string;
  note?: string;
}

export interface SweepContext {
  now: Date;
  actor: Actor;
  /** Subjects under a legal hold when the sweep started. */
  held: readonly string[];
  batchSize: number;
  /** Called between steps: renews the sweep's lease, and throws when it was lost. */
  heartbeat(): Promise<void>;
  /** Aborted: stop after the current batch (the process is shutting down). */
  signal?: AbortSignal | undefined;
}

/**
 * Where retention rules are enforced: the vault, and each declared dataset collection. A
 * target plans (counts, changing nothing) and applies (removes in batches) with the same
 * selection, so a dry run reports what the run then does at the same instant.
 */
export interface RetentionTarget {
  readonly id: string;
  plan(context: SweepContext): Promise<RetentionOutcome[]>;
  /** `onProgress` receives the rows removed by each batch. */
  apply(context: SweepContext, onProgress: (rows: number) => void): Promise<RetentionOutcome[]>;
}
