import { approximateDays, parseDuration, type Duration } from '../policy/duration.js';
import { cutoffFor, effectiveDuration, type RetentionAction, type RetentionRules, type ResolvedRule } from './retention.rules.js';

/**
 * How the retention rules reach the fields of a connected dataset. A field's clock is either
 * its row's timestamp column or the person the row belongs to:
 *
 * - a field whose category follows a rule triggered by collection, in a collection with a
 *   timestamp column, expires with its row's timestamp (the timestamp steps: DatasetTarget);
 * - every other field follows the rule that governs it for the person the row belongs to,
 *   counted from that person's last activity or closed account (the steps by person:
 *   DatasetPeopleTarget).
 *
 * Each field has one owner, so the two kinds of step never change the same field, and a
 * dry run of the one does not depend on what the other did. Rows carry no subject kinds, so
 * the timestamp steps follow the rule for everyone (or, when every rule names kinds, the
 * first); the steps by person know the person's kinds.
 */
export interface DatasetFieldRef {
  name: string;
  category: string;
  /** A retention exception the field is kept under (`exception:` in the dataset declaration). */
  exception?: string;
  /** The identity kind the field holds: where a person's walk starts. */
  identity?: string;
}

export interface DatasetCollectionRef {
  datastore: string;
  collection: string;
  categories: readonly string[];
  /** The collection's timestamp column. A collection given to a timestamp step has one. */
  timestamp?: string | undefined;
  /** Its fields; without them the collection is expired as whole rows only. */
  fields?: readonly DatasetFieldRef[];
  /** Every row is kept under this exception. */
  exception?: string;
}

/** The rule a row's category follows when nothing ties the row to a person. */
export function rowRule(rules: RetentionRules, category: string): ResolvedRule | undefined {
  const candidates = rules.candidates(category);
  return candidates.find((candidate) => !candidate.kinds) ?? candidates[0];
}

/** Does this field expire with its row's timestamp (rather than with the person the row belongs to)? */
export function expiresWithRow(rules: RetentionRules, category: string, timestamp: string | undefined): boolean {
  return timestamp !== undefined && rowRule(rules, category)?.rule.trigger === 'collected';
}

/** A retention exception of the policy, by id. */
export function exceptionById(rules: RetentionRules, id: string): { id: string; duration: Duration } | undefined {
  for (const rule of rules.policy.document.retention) {
    const found = (rule.exceptions ?? []).find((exception) => exception.id === id);
    if (found) return { id, duration: parseDuration(found.duration)! };
  }
  return undefined;
}

/**
 * How long after its trigger a field is kept, and under which exception once its rule has
 * run out: its rule with the rule's exception, or longer when the field (or its collection)
 * names an exception of its own in the dataset declaration.
 */
export function fieldKeep(rules: RetentionRules, resolved: ResolvedRule, declared: string | undefined): { until: Duration; exception: string | undefined } {
  const until = effectiveDuration(resolved);
  const own = declared ? exceptionById(rules, declared) : undefined;
  if (own && approximateDays(own.duration) > approximateDays(until)) return { until: own.duration, exception: own.id };
  return { until, exception: until === resolved.duration ? undefined : resolved.exception?.id };
}

/** One timestamp step: rows (or some of their fields) older than `before` go. */
export interface TimestampStep {
  resolved: ResolvedRule;
  /** The categories the step reaches, for the report. */
  categories: string[];
  action: RetentionAction;
  /** How long after the row's timestamp its data is gone. */
  until: Duration;
  /** The exception keeping the data past the rule, if any. */
  exception: string | undefined;
  /** Whether the whole row follows the step (deleted, or anonymised field by field); otherwise only `fields` go. */
  wholeRow: boolean;
  /** The fields erased; undefined: the whole row (deleted, or anonymised without the fields' list). */
  fields: string[] | undefined;
}

/**
 * What the timestamp steps do to a collection: nothing, the whole row (every field expires
 * with it: the row follows the field kept longest, so no category goes before its own rule
 * allows), or some fields (the others belong to people, or to no rule).
 */
export function timestampSteps(rules: RetentionRules, ref: DatasetCollectionRef): { steps: TimestampStep[]; uncovered: string[] } {
  const fields: DatasetFieldRef[] = ref.fields ? [...ref.fields] : ref.categories.map((category) => ({ name: category, category }));
  const uncovered = [...new Set(fields.filter((field) => !rowRule(rules, field.category)).map((field) => field.category))];
  const timed = fields.filter((field) => rowRule(rules, field.category)?.rule.trigger === 'collected');
  if (timed.length === 0) return { steps: [], uncovered };
  const keep = (field: DatasetFieldRef) => {
    const resolved = rowRule(rules, field.category)!;
    return { field, resolved, ...fieldKeep(rules, resolved, field.exception ?? ref.exception) };
  };
  if (timed.length === fields.length && uncovered.length === 0) {
    let longest: ReturnType<typeof keep> | undefined;
    for (const entry of timed.map(keep)) if (!longest || approximateDays(entry.until) > approximateDays(longest.until)) longest = entry;
    const { resolved, until, exception } = longest!;
    // Anonymising a row past every field's rule and exception erases every field, kept ones too.
    const all = ref.fields && resolved.rule.action === 'anonymize' ? ref.fields.map((field) => field.name) : undefined;
    return { steps: [{ resolved, categories: [longest!.field.category], action: resolved.rule.action, until, exception, wholeRow: true, fields: all }], uncovered };
  }
  const groups = new Map<string, TimestampStep>();
  for (const entry of timed.map(keep)) {
    const key = `${entry.resolved.rule.id}\u0000${approximateDays(entry.until)}`;
    const group: TimestampStep = groups.get(key) ?? { resolved: entry.resolved, categories: [], action: entry.resolved.rule.action, until: entry.until, exception: entry.exception, wholeRow: false, fields: [] };
    if (!group.categories.includes(entry.field.category)) group.categories.push(entry.field.category);
    group.fields!.push(entry.field.name);
    group.exception ??= entry.exception;
    groups.set(key, group);
  }
  return { steps: [...groups.values()], uncovered };
}

/** The moment before which a step's rows are due, and before which they are past the rule alone. */
export function stepCutoffs(now: Date, step: TimestampStep): { due: Date; pastRule: Date } {
  return { due: cutoffFor(now, step.until), pastRule: cutoffFor(now, step.resolved.duration) };
}
