import type { Keyring } from '../core/keyring.js';

/**
 * What the outbox seals with the keyring's KEK directly (a recipient who is not a subject has no
 * data key): a queued message's template data and, for such a recipient, the address. Stored as
 * `<kek id>.<wrapped>`, so the KEK it was sealed under travels with it — `pledge keys rotate`
 * finds what is still under an old one — and bound to its message and column: a value copied to
 * another row does not open.
 *
 *   const sealed = sealPart(keyring, message.id, 'data', JSON.stringify(data));
 *   const data = JSON.parse(openPart(keyring, message.id, 'data', sealed));
 */
export type SealedPart = 'to' | 'data';

function context(messageId: string, part: SealedPart): string {
  return `outbox:${messageId}:${part}`;
}

/** Seals under the KEK the database wraps under (see Keyring.wrapKekId). */
export function sealPart(keyring: Keyring, messageId: string, part: SealedPart, value: string): string {
  const { kekId, wrapped } = keyring.wrap(Buffer.from(value), context(messageId, part));
  return `${kekId}.${wrapped}`;
}

/** Throws `master_key_invalid` when its KEK is not configured here, `data_integrity_failed` when it was altered or moved. */
export function openPart(keyring: Keyring, messageId: string, part: SealedPart, sealed: string): string {
  return keyring.unwrap(kekOf(sealed), sealed.slice(sealed.indexOf('.') + 1), context(messageId, part)).toString('utf8');
}

/** The same value sealed under PLEDGE_MASTER_KEY's KEK; unchanged when it already is. Throws as openPart. */
export function rewrapPart(keyring: Keyring, messageId: string, part: SealedPart, sealed: string): string {
  const kekId = kekOf(sealed);
  if (kekId === keyring.kekId) return sealed;
  const rewrapped = keyring.rewrap(kekId, sealed.slice(sealed.indexOf('.') + 1), context(messageId, part));
  return `${rewrapped.kekId}.${rewrapped.wrapped}`;
}

/** The id of the KEK a value was sealed under. */
export function kekOf(sealed: string): string {
  return sealed.slice(0, Math.max(0, sealed.indexOf('.')));
}
