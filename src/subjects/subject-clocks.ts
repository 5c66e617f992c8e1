import type { Kysely } from 'kysely';
import type { Tables } from '../core/db.tables.js';

/**
 * The retention clocks of subjects: when each was last active and when its account was
 * closed. Retention sweeps read them to find the people whose rows in connected datasets a
 * rule counting from the person has reached — in batches, along an index, never everyone at
 * once. Metadata only: nothing here is decrypted, and nothing personal is read.
 *
 *   const clocks = new SubjectClocks(database.db);
 *   let page = await clocks.pastTrigger('account_closed', cutoff, { limit: 100 });
 *   while (page.length > 0) { …; page = await clocks.pastTrigger('account_closed', cutoff, { limit: 100, after: page.at(-1) }); }
 */
export type SubjectTrigger = 'last_activity' | 'account_closed';

export interface SubjectClock {
  id: string;
  kinds: string[];
  status: 'active' | 'closed';
  lastActivityAt: string;
  closedAt: string | null;
}

/** When the clock of `trigger` started for this subject, or undefined when it has not. */
export function triggerStart(trigger: SubjectTrigger, subject: SubjectClock): string | undefined {
  if (trigger === 'last_activity') return subject.lastActivityAt;
  return subject.status === 'closed' && subject.closedAt ? subject.closedAt : undefined;
}

export class SubjectClocks {
  constructor(private readonly db: Kysely<Tables>) {}

  /**
   * Subjects (not erased) whose `trigger` started at or before `cutoff`, ordered by that time
   * and id, after `after` (the last of the previous page), at most `limit`; with `only`, among
   * those subjects alone. Served by the indexes subjects_last_activity and subjects_status_closed.
   */
  async pastTrigger(trigger: SubjectTrigger, cutoff: string, options: { limit: number; after?: SubjectClock | undefined; only?: readonly string[] | undefined }): Promise<SubjectClock[]> {
    if (options.only?.length === 0) return [];
    const column = trigger === 'last_activity' ? 'last_activity_at' : 'closed_at';
    let query = this.db
      .selectFrom('subjects')
      .select(['id', 'kinds', 'status', 'last_activity_at', 'closed_at'])
      .where(column, '<=', cutoff)
      .orderBy(column)
      .orderBy('id')
      .limit(options.limit);
    query = trigger === 'account_closed' ? query.where('status', '=', 'closed') : query.where('status', '!=', 'erased');
    const after = options.after ? triggerStart(trigger, options.after) : undefined;
    if (options.after && after !== undefined) {
      const last = options.after.id;
      // The plain bound lets the index start the scan at the previous page's end.
      query = query.where(column, '>=', after).where((eb) => eb.or([eb(column, '>', after), eb('id', '>', last)]));
    }
    if (options.only) query = query.where('id', 'in', options.only);
    const rows = await query.execute();
    return rows.map((row) => ({
      id: row.id,
      kinds: JSON.parse(row.kinds) as string[],
      status: row.status as 'active' | 'closed',
      lastActivityAt: row.last_activity_at,
      closedAt: row.closed_at,
    }));
  }
}
