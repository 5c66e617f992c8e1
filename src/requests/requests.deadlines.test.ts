import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DeadlineCalendar, usFederalHolidays } from './requests.deadlines.js';

test('US federal holidays of 2026, as observed', () => {
  assert.deepEqual(usFederalHolidays(2026), [
    '2026-01-01', '2026-01-19', '2026-02-16', '2026-05-25', '2026-06-19', '2026-07-03', '2026-09-07', '2026-10-12', '2026-11-11', '2026-11-26', '2026-12-25',
  ]);
  // 2022: New Year's Day on a Saturday is observed on Friday, December 31, 2021.
  assert.equal(usFederalHolidays(2022)[0], '2021-12-31');
  assert.equal(usFederalHolidays(2027)[10], '2027-12-24');
});

test('calendar days count every day and end at the end of the last day', () => {
  const calendar = new DeadlineCalendar(undefined);
  assert.equal(calendar.due(new Date('2026-03-01T12:00:00Z'), { days: 30, kind: 'calendar' }).toISOString(), '2026-03-31T23:59:59.999Z');
  // Holidays do not shorten a calendar-day deadline.
  const us = new DeadlineCalendar({ holidays: 'us_federal' });
  assert.equal(us.due(new Date('2026-12-20T09:00:00Z'), { days: 10, kind: 'calendar' }).toISOString(), '2026-12-30T23:59:59.999Z');
});

test('business days skip weekends and holidays of the calendar', () => {
  const us = new DeadlineCalendar({ holidays: 'us_federal' });
  // Thursday July 2: Friday the 3rd is the observed Independence Day, then the weekend.
  assert.equal(us.due(new Date('2026-07-02T15:00:00Z'), { days: 2, kind: 'business' }).toISOString(), '2026-07-07T23:59:59.999Z');
  const plain = new DeadlineCalendar(undefined);
  assert.equal(plain.due(new Date('2026-07-02T15:00:00Z'), { days: 2, kind: 'business' }).toISOString(), '2026-07-06T23:59:59.999Z');
  // Extra holidays and a custom working week.
  const custom = new DeadlineCalendar({ business_days: ['sun', 'mon', 'tue', 'wed', 'thu'], extra_holidays: ['2026-04-06'] });
  // Friday April 3 → Sunday 5 (1), Monday 6 is a holiday, Tuesday 7 (2).
  assert.equal(custom.due(new Date('2026-04-03T08:00:00Z'), { days: 2, kind: 'business' }).toISOString(), '2026-04-07T23:59:59.999Z');
});

test('days are counted in the policy time zone', () => {
  const newYork = new DeadlineCalendar({ timezone: 'America/New_York' });
  // 02:00 UTC on March 2 is still March 1 in New York; the deadline is the end of March 31 there (EDT, UTC-4).
  assert.equal(newYork.localDate(new Date('2026-03-02T02:00:00Z')), '2026-03-01');
  assert.equal(newYork.due(new Date('2026-03-02T02:00:00Z'), { days: 30, kind: 'calendar' }).toISOString(), '2026-04-01T03:59:59.999Z');
  // In winter the offset is UTC-5.
  assert.equal(newYork.endOfDay('2026-01-15').toISOString(), '2026-01-16T04:59:59.999Z');
  const tokyo = new DeadlineCalendar({ timezone: 'Asia/Tokyo' });
  assert.equal(tokyo.endOfDay('2026-01-15').toISOString(), '2026-01-15T14:59:59.999Z');
});

test('an extension counts from the current deadline', () => {
  const calendar = new DeadlineCalendar(undefined);
  const due = calendar.due(new Date('2026-03-01T12:00:00Z'), { days: 30, kind: 'calendar' });
  assert.equal(calendar.extend(due, { days: 60, kind: 'calendar' }).toISOString(), '2026-05-30T23:59:59.999Z');
});

test('an unknown time zone is refused rather than counted in UTC', () => {
  assert.throws(() => new DeadlineCalendar({ timezone: 'Mars/Olympus_Mons' }), RangeError);
});
