/**
 * One error class, one catalogue. Every failure the engine reports carries a stable `code`
 * from ERROR_CATALOGUE; only the HTTP layer turns codes into status codes and RFC 9457
 * problem+json bodies, and the CLI turns them into exit codes and messages.
 *
 * Messages must never contain personal data: they end up in logs and API responses.
 */

export interface ErrorSpec {
  /** HTTP status the code maps to. */
  status: number;
  /** Short, constant, human-readable summary (the problem+json `title`). */
  title: string;
  /** What it means and what to do about it; rendered at /problems/{code}. */
  description: string;
}

export const ERROR_CATALOGUE = {
  validation_failed: {
    status: 400,
    title: 'The request is not valid',
    description:
      'The body, query or path parameters do not match the schema of the route. The `errors` member lists each problem with its location.',
  },
  malformed_body: {
    status: 400,
    title: 'The request body could not be parsed',
    description: 'The body is not well-formed JSON (or not the declared content type).',
  },
  payload_too_large: {
    status: 413,
    title: 'The request body is too large',
    description: 'The body exceeds the size limit of the route. Split the work into smaller requests.',
  },
  unsupported_media_type: {
    status: 415,
    title: 'Unsupported content type',
    description: 'The route does not accept the content type that was sent.',
  },
  not_found: {
    status: 404,
    title: 'Not found',
    description: 'No resource exists at this address.',
  },
  method_not_allowed: {
    status: 405,
    title: 'Method not allowed',
    description: 'The resource exists but does not support this HTTP method.',
  },
  rate_limited: {
    status: 429,
    title: 'Too many requests',
    description: 'Slow down; the `Retry-After` header says when to try again.',
  },
  policy_invalid: {
    status: 422,
    title: 'The policy is not valid',
    description:
      'The policy file has errors. Each problem names its file, line and column, the path inside the policy, and a suggestion where one exists. Run `pledge policy validate FILE`.',
  },
  policy_unreadable: {
    status: 422,
    title: 'The policy file cannot be read',
    description: 'The policy file is missing, empty, too large or not UTF-8 text.',
  },
  config_invalid: {
    status: 500,
    title: 'The configuration is not valid',
    description: 'An environment variable or command-line flag has a value Pledge cannot use. The message names it.',
  },
  master_key_invalid: {
    status: 500,
    title: 'The master key is not valid',
    description:
      'PLEDGE_MASTER_KEY (or the key file in the data directory) must hold 32 random bytes, encoded as 64 hex characters or base64.',
  },
  database_unavailable: {
    status: 503,
    title: 'The database is unavailable',
    description: 'Pledge cannot reach its database. The health endpoint reports the same state.',
  },
  internal: {
    status: 500,
    title: 'Internal error',
    description: 'Something failed inside Pledge. The error is logged with the request id given in the response.',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export interface PledgeErrorOptions {
  /** Extra, non-personal members for the problem body (e.g. a list of validation issues). */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class PledgeError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: PledgeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PledgeError';
    this.code = code;
    this.details = options.details;
  }

  get status(): number {
    return ERROR_CATALOGUE[this.code].status;
  }
}

export function isPledgeError(value: unknown): value is PledgeError {
  return value instanceof PledgeError;
}
