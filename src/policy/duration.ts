/**
 * Durations and deadlines as the policy writes them: "30 days", "6 months", "2 years",
 * ISO 8601 "P30D"; deadlines "30 days", "45 calendar days", "2 business days".
 * The schema's patterns (policy.schema.ts) admit exactly what these functions parse.
 */
export interface Duration {
  years: number;
  months: number;
  weeks: number;
  days: number;
  hours: number;
}

const WORD_UNITS: Record<string, keyof Duration> = {
  hour: 'hours', hours: 'hours', day: 'days', days: 'days', week: 'weeks', weeks: 'weeks',
  month: 'months', months: 'months', year: 'years', years: 'years',
};

export function parseDuration(text: string): Duration | undefined {
  const duration: Duration = { years: 0, months: 0, weeks: 0, days: 0, hours: 0 };
  const words = /^(\d+) ([a-z]+)$/.exec(text);
  if (words) {
    const unit = WORD_UNITS[words[2]!];
    if (!unit) return undefined;
    duration[unit] = Number(words[1]);
    return duration;
  }
  const iso = /^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?)?$/.exec(text);
  if (!iso || text === 'P' || text.endsWith('T')) return undefined;
  duration.years = Number(iso[1] ?? 0);
  duration.months = Number(iso[2] ?? 0);
  duration.weeks = Number(iso[3] ?? 0);
  duration.days = Number(iso[4] ?? 0);
  duration.hours = Number(iso[5] ?? 0);
  return duration;
}

/** Approximate length in days, for comparing durations (a month counts 30.44 days). */
export function approximateDays(duration: Duration): number {
  return duration.years * 365.25 + duration.months * 30.44 + duration.weeks * 7 + duration.days + duration.hours / 24;
}

/** Adds a duration to a date by the calendar (months and years respect month lengths). */
export function addDuration(start: Date, duration: Duration): Date {
  const end = new Date(start.getTime());
  end.setUTCFullYear(end.getUTCFullYear() + duration.years);
  end.setUTCMonth(end.getUTCMonth() + duration.months);
  end.setUTCDate(end.getUTCDate() + duration.weeks * 7 + duration.days);
  end.setUTCHours(end.getUTCHours() + duration.hours);
  return end;
}

function plural(count: number, unit: string): string {
  return `${count} ${unit}${count === 1 ? '' : 's'}`;
}

/** "2 years", "1 year and 6 months", "immediately". */
export function describeDuration(duration: Duration): string {
  const parts: string[] = [];
  if (duration.years) parts.push(plural(duration.years, 'year'));
  if (duration.months) parts.push(plural(duration.months, 'month'));
  if (duration.weeks) parts.push(plural(duration.weeks, 'week'));
  if (duration.days) parts.push(plural(duration.days, 'day'));
  if (duration.hours) parts.push(plural(duration.hours, 'hour'));
  if (parts.length === 0) return 'immediately';
  if (parts.length === 1) return parts[0]!;
  return `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}`;
}

export interface Deadline {
  days: number;
  kind: 'calendar' | 'business';
}

export function parseDeadline(text: string): Deadline | undefined {
  const match = /^(\d+) (calendar |business )?(day|days)$/.exec(text);
  if (!match) return undefined;
  return { days: Number(match[1]), kind: match[2]?.trim() === 'business' ? 'business' : 'calendar' };
}

export function describeDeadline(deadline: Deadline): string {
  return deadline.kind === 'business' ? plural(deadline.days, 'business day') : plural(deadline.days, 'day');
}
