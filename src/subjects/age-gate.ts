import { calendarDay } from '../core/clock.js';
import { PledgeError } from '../core/errors.js';

/**
 * The age gate: data showing that a person is younger than the policy's minimum age stores
 * nothing. A birth date or an age can arrive as a category of its own
 * (`user.demographic.date_of_birth`) or inside a wider one
 * (`"user.demographic": {"dob": "2020-05-01"}`), so every name in the written value is looked
 * at, not only the category's.
 *
 * Names are compared without case or separators (date_of_birth, dateOfBirth and
 * Date-Of-Birth are one name):
 * - a birth date (date_of_birth, birth_date, birthdate, birthday, dob) must be a past date
 *   written YYYY-MM-DD, and the person's age on it must reach the minimum;
 * - a birth year (birth_year, year_of_birth) may not be so recent that the person is younger;
 * - an age or age range (age, age_range, age_group, age_bracket) may not end below the
 *   minimum: 9, "0-9", "under 13" and [0, 9] are refused with a minimum of 13; "10-14" and
 *   "13+" are not. An age range written otherwise ("prefer not to say") tells nothing and
 *   passes.
 *
 *   checkAgeGate('user.demographic', { dob: '2020-05-01' }, 13, now); // throws below_minimum_age
 */
const BIRTH_DATE = new Set(['dateofbirth', 'birthdate', 'birthday', 'dob']);
const BIRTH_YEAR = new Set(['birthyear', 'yearofbirth']);
const AGE = new Set(['age', 'agerange', 'agegroup', 'agebracket']);

/** A name without case or separators. */
function plain(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '');
}

export function checkAgeGate(category: string, value: unknown, minimumAge: number | undefined, now: Date): void {
  // Iterative: the value's depth is bounded by the vault, but a walk must not depend on it.
  // `nested`: the value sits under a key of the written value, not directly under the category.
  const pending: Array<{ name: string; value: unknown; nested: boolean }> = [{ name: category.slice(category.lastIndexOf('.') + 1), value, nested: false }];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const name = plain(next.name);
    // Only names from the lists above are ever echoed: other keys may be personal data.
    const where = next.nested ? `"${category}" (key ${name})` : `"${category}"`;
    if (Array.isArray(next.value)) {
      if (AGE.has(name) && next.value.length === 2 && next.value.every((bound) => typeof bound === 'number')) {
        checkAgeBound(Math.max(...(next.value as number[])), minimumAge, where);
        continue;
      }
      // A list under a name carries that name: {"dob": ["2020-05-01"]} is a birth date.
      for (const item of next.value) pending.push({ name: next.name, value: item, nested: next.nested });
      continue;
    }
    if (next.value === null) continue;
    if (BIRTH_DATE.has(name)) checkBirthDate(next.value, minimumAge, now, where);
    else if (BIRTH_YEAR.has(name)) checkBirthYear(next.value, minimumAge, now, where);
    else if (AGE.has(name)) checkAge(next.value, minimumAge, where);
    else if (typeof next.value === 'object') {
      for (const [key, child] of Object.entries(next.value as Record<string, unknown>)) pending.push({ name: key, value: child, nested: true });
    }
  }
}

function belowMinimum(minimumAge: number, where: string): never {
  throw new PledgeError('below_minimum_age', `${where} shows the person is younger than the minimum age of ${minimumAge} the policy sets; nothing was stored`);
}

function checkBirthDate(value: unknown, minimumAge: number | undefined, now: Date, where: string): void {
  const birth = typeof value === 'string' ? calendarDay(value) : undefined;
  if (!birth || birth > now) {
    throw new PledgeError('invalid_field_value', `the date of birth in ${where} must be a past date written YYYY-MM-DD`);
  }
  if (minimumAge === undefined) return;
  let age = now.getUTCFullYear() - birth.getUTCFullYear();
  if (now.getUTCMonth() < birth.getUTCMonth() || (now.getUTCMonth() === birth.getUTCMonth() && now.getUTCDate() < birth.getUTCDate())) age -= 1;
  if (age < minimumAge) belowMinimum(minimumAge, where);
}

function checkBirthYear(value: unknown, minimumAge: number | undefined, now: Date, where: string): void {
  const year = typeof value === 'number' ? value : typeof value === 'string' && /^\d{4}$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isInteger(year) || year > now.getUTCFullYear()) throw new PledgeError('invalid_field_value', `the birth year in ${where} must be a past year written YYYY`);
  // The oldest the person can be is the difference of the years.
  if (minimumAge !== undefined && now.getUTCFullYear() - year < minimumAge) belowMinimum(minimumAge, where);
}

function checkAge(value: unknown, minimumAge: number | undefined, where: string): void {
  const upper = typeof value === 'number' ? value : typeof value === 'string' ? upperBound(value) : undefined;
  if (upper !== undefined) checkAgeBound(upper, minimumAge, where);
}

function checkAgeBound(upper: number, minimumAge: number | undefined, where: string): void {
  if (minimumAge !== undefined && upper < minimumAge) belowMinimum(minimumAge, where);
}

/** The oldest age an age or age range written in words allows; undefined when it has none or cannot be read. */
export function upperBound(text: string): number | undefined {
  const range = text.trim().toLowerCase().replace(/\s*(years?|yrs?)(\s+old)?$/, '');
  let match = /^(\d{1,3})$/.exec(range);
  if (match) return Number(match[1]);
  match = /^\d{1,3}\s*(?:-|–|—|to)\s*(\d{1,3})$/.exec(range);
  if (match) return Number(match[1]);
  // "under 13" is at most 12.
  match = /^(?:under|below|less than|younger than|<)\s*(\d{1,3})$/.exec(range);
  if (match) return Number(match[1]) - 1;
  match = /^(?:<=|≤|up to|at most)\s*(\d{1,3})$/.exec(range);
  if (match) return Number(match[1]);
  return undefined;
}
