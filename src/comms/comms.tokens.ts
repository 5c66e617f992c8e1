import { createHmac } from 'node:crypto';
import { PledgeError } from '../core/errors.js';
import { safeEqual } from '../core/crypto.js';

/**
 * Unsubscribe tokens: `v1.<payload>.<signature>`, the payload naming the message, the subject
 * and the topic, with an expiry; the signature an HMAC-SHA-256 under a key derived from the
 * keyring's token-signing secret. Changing any byte (another subject, another topic) breaks
 * the signature; nothing is stored per token, so any server process sharing the keyring
 * verifies it.
 */
export interface UnsubscribeClaims {
  messageId: string;
  subjectId: string;
  topic: string;
  /** Seconds since the epoch. */
  expires: number;
}

const PREFIX = 'v1';

export class UnsubscribeTokens {
  private readonly key: Buffer;

  constructor(tokenSigningSecret: Buffer) {
    this.key = createHmac('sha256', tokenSigningSecret).update('pledge/unsubscribe/v1').digest();
  }

  private sign(payload: string): string {
    return createHmac('sha256', this.key).update(PREFIX).update('.').update(payload).digest('base64url');
  }

  issue(claims: UnsubscribeClaims): string {
    const payload = Buffer.from(JSON.stringify({ m: claims.messageId, s: claims.subjectId, t: claims.topic, e: claims.expires })).toString('base64url');
    return `${PREFIX}.${payload}.${this.sign(payload)}`;
  }

  verify(token: string, now: Date): UnsubscribeClaims {
    const invalid = () => new PledgeError('unsubscribe_token_invalid', 'this unsubscribe link is not valid; use the link from the message itself');
    const parts = token.split('.');
    if (token.length > 1000 || parts.length !== 3 || parts[0] !== PREFIX || !/^[A-Za-z0-9_-]+$/.test(parts[1]!) || !/^[A-Za-z0-9_-]{43}$/.test(parts[2]!)) throw invalid();
    if (!safeEqual(this.sign(parts[1]!), parts[2]!)) throw invalid();
    let decoded: { m?: unknown; s?: unknown; t?: unknown; e?: unknown };
    try {
      decoded = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as typeof decoded;
    } catch {
      throw invalid();
    }
    if (typeof decoded.m !== 'string' || typeof decoded.s !== 'string' || typeof decoded.t !== 'string' || typeof decoded.e !== 'number') throw invalid();
    if (decoded.e * 1000 < now.getTime()) throw new PledgeError('unsubscribe_token_expired', 'this unsubscribe link has expired; use the link in a more recent message');
    return { messageId: decoded.m, subjectId: decoded.s, topic: decoded.t, expires: decoded.e };
  }
}
