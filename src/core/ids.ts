import { secureRandomBytes } from './random.js';

/**
 * Prefixed, time-ordered identifiers: `sub_01jd3x…`. The prefix says what the id names
 * (so a support ticket that quotes one is unambiguous); the body is 48 bits of milliseconds
 * followed by 80 random bits in Crockford base32, so ids sort by creation time and keep
 * B-tree inserts local.
 *
 *   newId('sub') // 'sub_01jd3xq8m2v7k9r4t6w8y0z2b4'
 */
export const ID_PREFIXES = {
  sub: 'subject',
  idn: 'identity',
  fld: 'field',
  pol: 'policy version',
  cns: 'consent event',
  req: 'request',
  tsk: 'request task',
  msg: 'message',
  job: 'job',
  aud: 'audit entry',
  stf: 'staff user',
  key: 'api key',
  ses: 'session',
  dsc: 'disclosure',
  evt: 'event',
  vis: 'visitor',
  pkg: 'request package',
  hld: 'legal hold',
} as const;

export type IdPrefix = keyof typeof ID_PREFIXES;

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

function encodeBase32(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

export function newId(prefix: IdPrefix, now: number = Date.now()): string {
  return `${prefix}_${encodeBase32(timeOrderedBytes(now))}`;
}

/** The millisecond and random part of the last id made here (see timeOrderedBytes). */
let lastMillisecond = -1;
const lastRandom = new Uint8Array(10);

/**
 * 16 bytes: `now` in milliseconds as 48 bits, big-endian, then 80 random bits. Within one
 * millisecond the random part of each id is the last one plus one (as monotonic ULIDs do), so
 * ids made by this process in the same millisecond still sort in the order they were made: a
 * ledger read "oldest first" by id must not swap two events recorded a moment apart.
 */
function timeOrderedBytes(now: number): Uint8Array {
  const bytes = new Uint8Array(16);
  let time = now;
  for (let i = 5; i >= 0; i--) {
    bytes[i] = time % 256;
    time = Math.floor(time / 256);
  }
  if (now === lastMillisecond) {
    // 80 bits of room: the carry never reaches the time.
    for (let i = lastRandom.length - 1; i >= 0 && ++lastRandom[i]! === 256; i--) lastRandom[i] = 0;
  } else {
    lastMillisecond = now;
    lastRandom.set(secureRandomBytes(10));
  }
  bytes.set(lastRandom, 6);
  return bytes;
}

/**
 * A UUID version 7 (RFC 9562): 48 bits of milliseconds, then random bits, in the standard
 * 8-4-4-4-12 form. For identifiers another standard says are UUIDs (a consent receipt's id):
 * unlike version 4 they sort by creation time, so the index they key grows at its end instead
 * of dirtying a random page with every insert.
 */
export function uuidV7(now: number = Date.now()): string {
  const bytes = timeOrderedBytes(now);
  bytes[6] = 0x70 | (bytes[6]! & 0x0f); // version 7
  bytes[8] = 0x80 | (bytes[8]! & 0x3f); // variant 10
  const hex = Buffer.from(bytes).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const ID_PATTERN = /^([a-z]{3})_([0-9a-hjkmnp-tv-z]{26})$/;

/** True when `value` is a well-formed id with the given prefix. */
export function isId(value: string, prefix: IdPrefix): boolean {
  const match = ID_PATTERN.exec(value);
  return match !== null && match[1] === prefix;
}
