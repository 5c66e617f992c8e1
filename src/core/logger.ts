import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * Structured logs (pino). Personal data never belongs in a log line: code logs ids, not
 * emails. Redaction is the second line of defence for the mistakes that slip through —
 * credentials in headers, and any field whose name says it holds personal data.
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  'email', '*.email',
  'phone', '*.phone',
  'password', '*.password',
  'token', '*.token',
  'identity', '*.identity',
  'identities', '*.identities',
  'value', '*.value',
  'fields', '*.fields',
  'data', '*.data',
  'body', '*.body',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: undefined,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      serializers: {
        // Query strings are dropped from logged URLs: they are where personal data leaks
        // into logs when a client puts it in the wrong place.
        req: (request: { method?: string; url?: string; id?: string }) => ({
          id: request.id,
          method: request.method,
          url: request.url?.split('?')[0],
        }),
        res: (response: { statusCode?: number }) => ({ statusCode: response.statusCode }),
      },
    },
    destination,
  );
}
