import { randomBytes } from 'node:crypto';

/**
 * Request ids (`requestId` in every problem document, `reqId` in the logs): a random prefix
 * drawn when the process starts, then a counter. Unique across the processes of a deployment
 * and its restarts as a UUID would be in practice (48 random bits tell processes apart, the
 * counter tells requests apart), without drawing random bytes on every request.
 */
export function requestIdGenerator(): () => string {
  const prefix = randomBytes(6).toString('base64url');
  let next = 0;
  return () => `${prefix}-${(next++).toString(36)}`;
}
