import type { Deadline } from '../policy/duration.js';
import type { PolicyDocument } from '../policy/policy.schema.js';

/**
 * Request deadlines as the policy's `rights` section sets them: "30 days" counts calendar days,
 * "10 business days" skips the days that are not business days (default Saturday and Sunday)
 * and the holidays of the calendar (a preset such as us_federal, plus extra dates). Days are
 * counted in the policy's time zone from the day after the request was received; the deadline
 * is the end of the last day there.
 *
 *   const calendar = new DeadlineCalendar(policy.document.rights.calendar);
 *   calendar.due(new Date('2026-07-02T15:00:00Z'), { days: 2, kind: 'business' });
 *   // 2026-07-07T23:59:59.999Z (July 3 is the observed Independence Day, then a weekend)
 */
type CalendarSettings = NonNullable<PolicyDocument['rights']['calendar']>;

const WEEKDAY_INDEX: Record<string, number> = { sun: 0, mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6 };

/** A date without time, YYYY-MM-DD, as days since the epoch (UTC arithmetic only). */
function dayNumber(date: string): number {
  return Date.UTC(Number(date.slice(0, 4)), Number(date.slice(5, 7)) - 1, Number(date.slice(8, 10))) / 86_400_000;
}

function dayString(day: number): string {
  return new Date(day * 86_400_000).toISOString().slice(0, 10);
}

function nthWeekday(year: number, month: number, weekday: number, nth: number): string {
  const first = new Date(Date.UTC(year, month, 1)).getUTCDay();
  const date = 1 + ((weekday - first + 7) % 7) + (nth - 1) * 7;
  return dayString(Date.UTC(year, month, date) / 86_400_000);
}

function lastWeekday(year: number, month: number, weekday: number): string {
  const lastDate = new Date(Date.UTC(year, month + 1, 0));
  const back = (lastDate.getUTCDay() - weekday + 7) % 7;
  return dayString(Date.UTC(year, month, lastDate.getUTCDate() - back) / 86_400_000);
}

/** A fixed-date holiday falling on a weekend is observed on the Friday before or the Monday after. */
function observed(year: number, month: number, date: number): string {
  const day = Date.UTC(year, month, date) / 86_400_000;
  const weekday = new Date(day * 86_400_000).getUTCDay();
  return dayString(weekday === 6 ? day - 1 : weekday === 0 ? day + 1 : day);
}

/** The eleven US federal holidays of a year (5 U.S.C. 6103), as observed. */
export function usFederalHolidays(year: number): string[] {
  return [
    observed(year, 0, 1),
    nthWeekday(year, 0, 1, 3), // Birthday of Martin Luther King, Jr.
    nthWeekday(year, 1, 1, 3), // Washington's Birthday
    lastWeekday(year, 4, 1), // Memorial Day
    observed(year, 5, 19), // Juneteenth
    observed(year, 6, 4),
    nthWeekday(year, 8, 1, 1), // Labor Day
    nthWeekday(year, 9, 1, 2), // Columbus Day
    observed(year, 10, 11), // Veterans Day
    nthWeekday(year, 10, 4, 4), // Thanksgiving Day
    observed(year, 11, 25),
  ];
}

/** Offset of `timeZone` from UTC at `instant`, in milliseconds. */
function zoneOffset(instant: number, timeZone: string): number {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' }).formatToParts(new Date(instant));
  const get = (type: string) => Number(parts.find((part) => part.type === type)!.value);
  const local = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour') % 24, get('minute'), get('second'));
  return local - Math.floor(instant / 1000) * 1000;
}

export class DeadlineCalendar {
  private readonly businessDays: ReadonlySet<number>;
  private readonly timeZone: string;
  private readonly preset: 'none' | 'us_federal';
  private readonly extra: ReadonlySet<string>;
  private readonly holidayCache = new Map<number, ReadonlySet<string>>();

  constructor(settings: CalendarSettings | undefined) {
    this.businessDays = new Set((settings?.business_days ?? ['mon', 'tue', 'wed', 'thu', 'fri']).map((day) => WEEKDAY_INDEX[day]!));
    this.timeZone = settings?.timezone ?? 'UTC';
    // An unknown zone would silently count in UTC: fail loudly instead.
    new Intl.DateTimeFormat('en-US', { timeZone: this.timeZone });
    this.preset = settings?.holidays ?? 'none';
    this.extra = new Set(settings?.extra_holidays ?? []);
  }

  /** The calendar date (YYYY-MM-DD) of `instant` in the policy's time zone. */
  localDate(instant: Date): string {
    return new Date(instant.getTime() + zoneOffset(instant.getTime(), this.timeZone)).toISOString().slice(0, 10);
  }

  /** The last millisecond of `date` in the policy's time zone, as an instant. */
  endOfDay(date: string): Date {
    const localEnd = (dayNumber(date) + 1) * 86_400_000 - 1;
    // The offset at the guessed instant, checked once more around a DST change.
    let instant = localEnd - zoneOffset(localEnd, this.timeZone);
    instant = localEnd - zoneOffset(instant, this.timeZone);
    return new Date(instant);
  }

  isHoliday(date: string): boolean {
    if (this.extra.has(date)) return true;
    if (this.preset !== 'us_federal') return false;
    const year = Number(date.slice(0, 4));
    let holidays = this.holidayCache.get(year);
    if (!holidays) {
      // New Year's Day of the next year may be observed on December 31.
      holidays = new Set([...usFederalHolidays(year), ...usFederalHolidays(year + 1)]);
      this.holidayCache.set(year, holidays);
    }
    return holidays.has(date);
  }

  isBusinessDay(date: string): boolean {
    return this.businessDays.has(new Date(dayNumber(date) * 86_400_000).getUTCDay()) && !this.isHoliday(date);
  }

  /** The local date `deadline` after `date`. */
  addDays(date: string, deadline: Deadline): string {
    let day = dayNumber(date);
    if (deadline.kind === 'calendar') return dayString(day + deadline.days);
    let remaining = deadline.days;
    // A calendar without business days would never end; the schema requires at least one.
    while (remaining > 0) {
      day += 1;
      if (this.isBusinessDay(dayString(day))) remaining -= 1;
    }
    return dayString(day);
  }

  /** When a request received at `received` must be answered. */
  due(received: Date, deadline: Deadline): Date {
    return this.endOfDay(this.addDays(this.localDate(received), deadline));
  }

  /** An extension counts from the current deadline's local date. */
  extend(currentDue: Date, extension: Deadline): Date {
    return this.endOfDay(this.addDays(this.localDate(currentDue), extension));
  }
}
