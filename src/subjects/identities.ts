import { domainToASCII } from 'node:url';
import { PledgeError } from '../core/errors.js';

/**
 * The ways a company knows a person. Values are normalised before they are indexed or stored,
 * so "Jane.Doe@Example.com " and "jane.doe@example.com" are the same identity.
 */
export const IDENTITY_KINDS = ['email', 'user_id', 'phone', 'external_id', 'cookie_id'] as const;
export type IdentityKind = (typeof IDENTITY_KINDS)[number];

const EMAIL = /^[^\s@"<>()[\]\\,;:]+@[^\s@"<>()[\]\\,;:]+\.[^\s@"<>()[\]\\,;:.]{2,}$/u;
/** RFC 5321 4.5.3.1.1: a local part is at most 64 octets. */
const MAX_LOCAL_PART_BYTES = 64;

/** Carries the reason alone too, for callers that check a value which is not an identity. */
class InvalidIdentity extends PledgeError {
  constructor(
    kind: IdentityKind,
    readonly why: string,
  ) {
    // The value itself is never put in the message: it is personal data.
    super('invalid_identity', `the ${kind} identity is not valid: ${why}`);
  }
}

function invalid(kind: IdentityKind, why: string): never {
  throw new InvalidIdentity(kind, why);
}

/** Why `raw` is not an email address as an email identity must be, or undefined when it is one. */
export function emailAddressProblem(raw: string): string | undefined {
  try {
    normalizeIdentity('email', raw);
    return undefined;
  } catch (error) {
    if (error instanceof InvalidIdentity) return error.why;
    throw error;
  }
}

/**
 * An email address with its domain in ASCII: user@bücher.de and user@xn--bcher-kva.de reach
 * the same mailbox, so they are one identity, written in the form every mail server accepts.
 */
function normalizeEmail(email: string): string {
  const at = email.lastIndexOf('@');
  if (at <= 0) invalid('email', 'expected an address such as name@example.com');
  const local = email.slice(0, at);
  if (Buffer.byteLength(local) > MAX_LOCAL_PART_BYTES) invalid('email', `the part before @ is longer than ${MAX_LOCAL_PART_BYTES} bytes`);
  const domain = domainToASCII(email.slice(at + 1));
  if (!domain) invalid('email', 'the part after @ is not a domain name');
  const normalized = `${local}@${domain}`;
  if (normalized.length > 254 || !EMAIL.test(normalized)) invalid('email', 'expected an address such as name@example.com');
  return normalized;
}

export function normalizeIdentity(kind: IdentityKind, raw: string): string {
  const value = raw.normalize('NFC').trim();
  if (value.length === 0) invalid(kind, 'it is empty');
  // Control characters never belong in an identifier.
  if (/\p{Cc}/u.test(value)) invalid(kind, 'it contains control characters');
  // Nor do invisible format characters (zero-width spaces and joiners, direction marks…): the
  // same identifier with one of them would be a second identity that looks like the first.
  if (/\p{Cf}/u.test(value)) invalid(kind, 'it contains invisible formatting characters');
  switch (kind) {
    case 'email':
      return normalizeEmail(value.toLowerCase());
    case 'phone': {
      const phone = value.replace(/[\s().-]/g, '');
      if (!/^\+?[0-9]{5,15}$/.test(phone)) invalid(kind, 'expected digits, optionally starting with + (5 to 15 digits)');
      return phone;
    }
    case 'cookie_id':
      if (!/^[A-Za-z0-9._~-]{1,200}$/.test(value)) invalid(kind, 'expected 1 to 200 letters, digits or ._~-');
      return value;
    case 'user_id':
    case 'external_id':
      if (value.length > 200) invalid(kind, 'it is longer than 200 characters');
      return value;
  }
}
