import type { AuditEntriesTable } from './audit.tables.js';
import { createPrivateKey, createPublicKey, hash as oneShotHash, sign, verify, type KeyObject } from 'node:crypto';
import { keyId } from '../core/crypto.js';
import { PledgeError } from '../core/errors.js';
import type { AuditDetailValue, AuditEvent } from './audit.types.js';

/**
 * The pure parts of the chain: how an entry is serialised and hashed, how details are
 * checked and made canonical, and how checkpoints are signed. The service and the store do
 * the I/O; the benchmark and the tests use these directly.
 */

/** prev_hash of entry 1: 32 zero bytes, base64url (the migration writes the same value). */
export const GENESIS_HASH = 'A'.repeat(43);

export const ENTRY_FORMAT = 'pledge-audit-entry:v1';

/** The stored columns an entry's hash covers — all of them but the hash itself. */
export type ChainFields = Omit<AuditEntriesTable, 'hash'>;

/**
 * The bytes an entry's hash is taken over: a JSON array of a format tag and every field, in a
 * fixed order. JSON encoding makes it unambiguous — strings are quoted and escaped, null is
 * not "null", a field boundary cannot move — so two different entries never serialise alike.
 * `details` is hashed exactly as stored (canonical JSON text), so verification never parses it.
 *
 *   ["pledge-audit-entry:v1",7,"aud_01…","2026-01-01T00:00:00.000Z","staff","stf_01…",
 *    "data.read","subject","sub_01…","support","{\"categories\":[\"user.contact.email\"]}","Xc1…"]
 */
export function serializeEntry(entry: ChainFields): string {
  return chainText(entry.seq, entryMiddle(entry), entry.prev_hash);
}

/** serializeEntry() from an entry's place in the chain and its entryMiddle(). */
export function chainText(seq: number, middle: string, prevHash: string): string {
  return `[${FORMAT_JSON},${JSON.stringify(seq)},${middle},${JSON.stringify(prevHash)}]`;
}

const FORMAT_JSON = JSON.stringify(ENTRY_FORMAT);

/**
 * The stored row as a JSON array of its columns in table order (seq, the middle's fields,
 * prev_hash, hash): what the PostgreSQL append takes as its parameter. Made from the middle the
 * hash was taken over, so an entry is serialised once for both.
 */
export function entryRowJson(seq: number, middle: string, prevHash: string, hash: string): string {
  return `[${JSON.stringify(seq)},${middle},${JSON.stringify(prevHash)},${JSON.stringify(hash)}]`;
}

/**
 * serializeEntry()'s text between seq and prev_hash — the part that does not depend on where the
 * entry lands in the chain, which the database completes in auditStore.appendPostgres. The one
 * place the order of the other fields is written down.
 */
export function entryMiddle(entry: Omit<ChainFields, 'seq' | 'prev_hash'>): string {
  const text = JSON.stringify([entry.id, entry.at, entry.actor_type, entry.actor_id, entry.action, entry.target_type, entry.target_id, entry.purpose, entry.details]);
  return text.slice(1, -1);
}

/** SHA-256 of the serialisation, base64url (the project's text form of binary values). */
export function hashEntry(entry: ChainFields): string {
  return chainHash(entry.seq, entryMiddle(entry), entry.prev_hash);
}

/** hashEntry() from an entry's place in the chain and its entryMiddle(), for callers that keep the middle. */
export function chainHash(seq: number, middle: string, prevHash: string): string {
  return oneShotHash('sha256', chainText(seq, middle, prevHash), 'base64url');
}

/**
 * True when a serialisation's last field, prev_hash, is `prevHash` — read off the text, so the
 * verifier fetches one column less. Exact when `prevHash` is base64url (nothing in it is
 * escaped): the text must end `,"<prevHash>"]`, and since a quote inside a JSON string is
 * always preceded by a backslash, the quote after that comma opens the last field.
 */
export function linksTo(serialized: string, prevHash: string): boolean {
  const start = serialized.length - prevHash.length - 2;
  return (
    start >= 2 &&
    serialized.charCodeAt(start - 2) === 44 /* , */ &&
    serialized.charCodeAt(start - 1) === 34 /* " */ &&
    serialized.charCodeAt(serialized.length - 2) === 34 /* " */ &&
    serialized.charCodeAt(serialized.length - 1) === 93 /* ] */ &&
    serialized.startsWith(prevHash, start)
  );
}

// --- details -------------------------------------------------------------------------------------

/** Longest string an entry may carry anywhere: ids, codes and category names fit; prose and blobs do not. */
export const MAX_AUDIT_STRING = 200;
const MAX_DETAIL_KEYS = 32;
const MAX_ARRAY_ITEMS = 100;
const CODE = /^[a-z][a-z0-9_.:-]*$/;
const DETAIL_KEY = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
// Control characters break the text column on PostgreSQL (NUL) or logs; lone surrogates do not
// survive UTF-8 storage, so the stored text would no longer hash to the stored hash.
const UNSTORABLE = /[\u0000-\u001f\u007f]|[\uD800-\uDFFF]/u;
// An e-mail address is the commonest personal value to slip into a log line: refused outright.
const EMAIL_LIKE = /[^\s@]@[^\s@]+\.[^\s@]/;

function refuse(message: string): never {
  // The message names the field, never the value: the value may be the personal data refused.
  throw new PledgeError('internal', `audit event refused: ${message}; audit entries carry ids, codes, counts and category names only, never personal data`);
}

// Every character either check above could object to: a string without any passes both, so
// the common case (ids, codes, category names) costs one scan instead of two. Surrogates are
// matched here as code units, paired or not; UNSTORABLE then tells the lone ones apart.
const SUSPECT = /[\u0000-\u001f\u007f@\uD800-\uDFFF]/;

function checkString(value: string, where: string): void {
  if (value.length > MAX_AUDIT_STRING) refuse(`${where} is ${value.length} characters long (at most ${MAX_AUDIT_STRING})`);
  if (!SUSPECT.test(value)) return;
  if (UNSTORABLE.test(value)) refuse(`${where} contains control characters or unpaired surrogates`);
  if (EMAIL_LIKE.test(value)) refuse(`${where} looks like an e-mail address`);
}

function checkCode(value: unknown, where: string): void {
  if (typeof value !== 'string' || value.length === 0) refuse(`${where} must be a non-empty string`);
  checkString(value, where);
  if (!CODE.test(value)) refuse(`${where} must be a lower-case code (letters, digits, _ . : -)`);
}

function checkDetailValue(value: AuditDetailValue, where: string): void {
  if (value === null || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) refuse(`${where} must be a finite number`);
    return;
  }
  if (typeof value === 'string') return checkString(value, where);
  if (Array.isArray(value)) {
    if (value.length > MAX_ARRAY_ITEMS) refuse(`${where} has ${value.length} items (at most ${MAX_ARRAY_ITEMS})`);
    value.forEach((item, index) => {
      if (typeof item !== 'string') refuse(`${where}[${index}] must be a string`);
      checkString(item, `${where}[${index}]`);
    });
    return;
  }
  refuse(`${where} must be a string, number, boolean, null or an array of strings`);
}

/**
 * Throws PledgeError('internal') when an event could carry personal data or cannot be stored
 * faithfully. Audit details hold ids, codes, counts, booleans and category names: a caller
 * that wants to say *which* data was read names the categories, never the values.
 */
export function validateAuditEvent(event: AuditEvent): void {
  if (!event || typeof event !== 'object') refuse('the event must be an object');
  const actor = event.actor as { type?: unknown; id?: unknown } | undefined;
  if (!actor || typeof actor !== 'object') refuse('actor is missing');
  checkCode(actor.type, 'actor.type');
  if (typeof actor.id !== 'string' || actor.id.length === 0) refuse('actor.id must be a non-empty string');
  checkString(actor.id, 'actor.id');
  checkCode(event.action, 'action');
  if (event.target !== undefined) {
    if (!event.target || typeof event.target !== 'object') refuse('target must be an object');
    checkCode(event.target.type, 'target.type');
    if (typeof event.target.id !== 'string' || event.target.id.length === 0) refuse('target.id must be a non-empty string');
    checkString(event.target.id, 'target.id');
  }
  if (event.purpose !== undefined) checkCode(event.purpose, 'purpose');
  if (event.details !== undefined) {
    if (event.details === null || typeof event.details !== 'object' || Array.isArray(event.details)) refuse('details must be an object');
    const keys = Object.keys(event.details);
    if (keys.length > MAX_DETAIL_KEYS) refuse(`details has ${keys.length} keys (at most ${MAX_DETAIL_KEYS})`);
    for (const key of keys) {
      if (!DETAIL_KEY.test(key)) refuse('a details key must be a short identifier (letters, digits, _ . -)');
      checkDetailValue(event.details[key]!, `details.${key}`);
    }
  }
}

/** Details as canonical JSON: keys sorted, no whitespace. `{}` when there are none. */
export function canonicalDetails(details: AuditEvent['details']): string {
  if (!details) return '{}';
  const keys = Object.keys(details).sort();
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    out += `${i ? ',' : ''}${JSON.stringify(key)}:${JSON.stringify(details[key])}`;
  }
  return `${out}}`;
}

// --- checkpoints ---------------------------------------------------------------------------------

export function checkpointMessage(seq: number, hash: string): Buffer {
  return Buffer.from(`pledge-audit-checkpoint:v1:${seq}:${hash}`);
}

// An Ed25519 private key in PKCS#8 DER is this fixed 16-byte header followed by the 32-byte
// seed (RFC 8410), so a stored seed always yields the same key pair.
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** First 12 hex digits of the SHA-256 of the public key (SPKI DER). */
  keyId: string;
}

export function signingKeyFromSeed(seed: Buffer): SigningKey {
  if (seed.length !== 32) throw new PledgeError('internal', 'the audit signing seed must be 32 bytes');
  const privateKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyId: keyId(publicKey.export({ format: 'der', type: 'spki' })) };
}

export function signCheckpoint(key: SigningKey, seq: number, hash: string): string {
  return sign(null, checkpointMessage(seq, hash), key.privateKey).toString('base64url');
}

export function checkpointSignatureValid(publicKey: KeyObject, seq: number, hash: string, signature: string): boolean {
  try {
    return verify(null, checkpointMessage(seq, hash), publicKey, Buffer.from(signature, 'base64url'));
  } catch {
    return false;
  }
}
