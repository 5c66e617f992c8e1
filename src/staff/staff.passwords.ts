
/**
 * Staff passwords: a short policy (NIST SP 800-63B: length over composition rules, and no
 * known-bad passwords) and argon2id with OWASP's minimum parameters.
 *
 *   const problems = passwordProblems(password, email);   // [] when acceptable
 *   const phc = await hashPassword(password);             // $argon2id$v=19$m=19456,t=2,p=1$…
 *   await verifyPassword(phc, password);                  // true
 */
// Algorithm.Argon2id of @node-rs/argon2 (a const enum value: 2).
export const ARGON2_PARAMS = { algorithm: 2, memoryCost: 19456, timeCost: 2, parallelism: 1 } as const;

/** The native argon2 module loads on the first sign-in, not at every start of the server. */
let argon2: Promise<typeof import('@node-rs/argon2')> | undefined;
const loadArgon2 = () => (argon2 ??= import('@node-rs/argon2'));

export const MIN_PASSWORD_LENGTH = 12;
/** Bounded so that hashing a hostile multi-megabyte "password" cannot be used to burn CPU. */
export const MAX_PASSWORD_LENGTH = 1024;

/**
 * Common passwords of the allowed length (from public breach top lists). Short ones are already
 * refused by the length rule; this catches the long-but-guessable favourites.
 */
const COMMON_PASSWORDS = new Set([
  '123456789012',
  '1234567890123',
  '12345678901234',
  '123456123456',
  '123123123123',
  '111111111111',
  '000000000000',
  '1q2w3e4r5t6y',
  '1qaz2wsx3edc',
  'qwertyuiopas',
  'qwertyuiop123',
  'qwerty123456',
  'qwertyqwerty',
  'asdfghjkl123',
  'password1234',
  'password12345',
  'password123456',
  'password!234',
  'passw0rd1234',
  'p@ssw0rd1234',
  'passwordpassword',
  'iloveyou1234',
  'letmein12345',
  'welcome12345',
  'welcome@1234',
  'changeme1234',
  'administrator',
  'administrator1',
  'admin1234567',
  'adminadmin123',
  'football1234',
  'baseball1234',
  'superman1234',
  'sunshine1234',
  'princess1234',
  'trustno11234',
  'correcthorsebatterystaple',
  'abcdefghijkl',
  'abcd1234abcd',
  'pledge123456',
  'privacy12345',
]);

export type PasswordProblem = 'too_short' | 'too_long' | 'same_as_email' | 'common' | 'repeated';

/** Why a password is refused; empty when it is acceptable. Never includes the password. */
export function passwordProblems(password: string, email?: string): PasswordProblem[] {
  const problems: PasswordProblem[] = [];
  const normalised = normalisePassword(password);
  // Length in characters as people count them (code points), not UTF-16 units.
  const length = [...normalised].length;
  if (length < MIN_PASSWORD_LENGTH) problems.push('too_short');
  if (length > MAX_PASSWORD_LENGTH) problems.push('too_long');
  const folded = normalised.toLowerCase();
  if (email !== undefined) {
    const address = email.trim().toLowerCase();
    if (folded === address || folded === address.split('@')[0]) problems.push('same_as_email');
  }
  if (COMMON_PASSWORDS.has(folded)) problems.push('common');
  else if (length > 0 && new Set(normalised).size === 1) problems.push('repeated');
  return problems;
}

/**
 * The same password typed on two keyboards can be two different byte strings (composed or
 * decomposed accents); NFKC makes them one, as NIST SP 800-63B recommends.
 */
function normalisePassword(password: string): string {
  return password.normalize('NFKC');
}

export async function hashPassword(password: string): Promise<string> {
  const { hash } = await loadArgon2();
  return hash(normalisePassword(password), ARGON2_PARAMS);
}

/** True when the password matches; a malformed stored hash counts as no match. */
export async function verifyPassword(phc: string, password: string): Promise<boolean> {
  try {
    const { verify } = await loadArgon2();
    return await verify(phc, normalisePassword(password));
  } catch {
    return false;
  }
}

export interface PhcParameters {
  algorithm: string;
  version: number;
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

/** Reads the algorithm and cost parameters of a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`). */
export function parsePhc(phc: string): PhcParameters | undefined {
  const match = /^\$(argon2(?:id|i|d))\$v=(\d+)\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/.exec(phc);
  if (!match) return undefined;
  return { algorithm: match[1]!, version: Number(match[2]), memoryCost: Number(match[3]), timeCost: Number(match[4]), parallelism: Number(match[5]) };
}

/** True when a stored hash was made with other parameters than today's: rehash it at the next sign-in. */
export function needsRehash(phc: string): boolean {
  const parameters = parsePhc(phc);
  return (
    !parameters ||
    parameters.algorithm !== 'argon2id' ||
    parameters.version !== 19 ||
    parameters.memoryCost !== ARGON2_PARAMS.memoryCost ||
    parameters.timeCost !== ARGON2_PARAMS.timeCost ||
    parameters.parallelism !== ARGON2_PARAMS.parallelism
  );
}
