import { PledgeError } from '../core/errors.js';

/**
 * The ways a company knows a person. Values are normalised before they are indexed or stored,
 * so "Jane.Doe@Example.com " and "jane.doe@example.com" are the same identity.
 */
export const IDENTITY_KINDS = ['email', 'user_id', 'phone', 'external_id', 'cookie_id'] as const;
export type IdentityKind = (typeof IDENTITY_KINDS)[number];

const EMAIL = /^[^\s@"<>()[\]\\,;:]+@[^\s@"<>()[\]\\,;:]+\.[^\s@"<>()[\]\\,;:.]{2,}$/u;

function invalid(kind: IdentityKind, why: string): never {
  // The value itself is never put in the message: it is personal data.
  throw new PledgeError('invalid_identity', `the ${kind} identity is not valid: ${why}`);
}

export function normalizeIdentity(kind: IdentityKind, raw: string): string {
  const value = raw.normalize('NFC').trim();
  if (value.length === 0) invalid(kind, 'it is empty');
  // Control characters never belong in an identifier.
  if (/\p{Cc}/u.test(value)) invalid(kind, 'it contains control characters');
  switch (kind) {
    case 'email': {
      const email = value.toLowerCase();
      if (email.length > 254 || !EMAIL.test(email)) invalid(kind, 'expected an address such as name@example.com');
      return email;
    }
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
