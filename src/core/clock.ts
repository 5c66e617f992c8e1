/**
 * Time comes from a Clock so that deadlines, retention and expiry can be tested without
 * waiting: production uses `systemClock`, tests use `manualClock` and move it forward.
 */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

export interface ManualClock extends Clock {
  set(date: Date | string): void;
  advance(milliseconds: number): void;
}

export function manualClock(start: Date | string = '2026-01-01T00:00:00Z'): ManualClock {
  let current = new Date(start).getTime();
  return {
    now: () => new Date(current),
    set: (date) => {
      current = new Date(date).getTime();
    },
    advance: (milliseconds) => {
      current += milliseconds;
    },
  };
}

/**
 * The day a YYYY-MM-DD text names, at midnight UTC; undefined when it names none
 * (Date.parse would take 2027-02-30 as 2 March).
 */
export function calendarDay(text: string): Date | undefined {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!match) return undefined;
  const day = new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])));
  return day.getUTCMonth() === Number(match[2]) - 1 && day.getUTCDate() === Number(match[3]) ? day : undefined;
}
