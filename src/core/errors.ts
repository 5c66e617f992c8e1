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
      'The body, query or path parameters do not match the schema of the route. The `errors` member lists each problem with its location (e.g. `body/role`): a property the route does not accept is named in its location, a value outside a fixed list is told the allowed values. The values sent are never echoed.',
  },
  malformed_body: {
    status: 400,
    title: 'The request body could not be parsed',
    description:
      'The body is not well-formed JSON (or not the declared content type), or it holds a key named `__proto__` or a `constructor` key holding `prototype`: such keys could change the prototype of objects (prototype pollution), so they are refused wherever they appear, and the message says so. An empty body sent as JSON counts as no body: a route that needs one answers `validation_failed` with the body `is missing`.',
  },
  payload_too_large: {
    status: 413,
    title: 'The request body is too large',
    description: 'The body exceeds the size limit of the route. Split the work into smaller requests.',
  },
  unsupported_media_type: {
    status: 415,
    title: 'Unsupported content type',
    description:
      'The route does not accept the content type that was sent. The API takes JSON bodies (`application/json`); only the one-click unsubscribe also takes form bodies.',
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
  unauthenticated: {
    status: 401,
    title: 'Authentication required',
    description:
      'The request carries no valid credentials. Send an API key as `Authorization: Bearer pk_…`, or sign in (POST /v1/auth/login) and send the `pledge_session` cookie.',
  },
  invalid_credentials: {
    status: 401,
    title: 'Wrong email or password',
    description:
      'The email and password do not match an active staff account. The answer is the same whether the email is unknown, the password is wrong or the account is locked after repeated failures (it unlocks by itself after 15 minutes, or a staff manager unlocks it).',
  },
  session_expired: {
    status: 401,
    title: 'Session expired',
    description: 'The session ended: 30 minutes without activity, or 12 hours after signing in. Sign in again.',
  },
  api_key_revoked: {
    status: 401,
    title: 'API key revoked',
    description: 'This API key was revoked and can no longer be used. Create a new key (POST /v1/api-keys) and update the service that uses it.',
  },
  api_key_expired: {
    status: 401,
    title: 'API key expired',
    description: 'This API key has passed its expiry date. Create a new key (POST /v1/api-keys) and update the service that uses it.',
  },
  forbidden: {
    status: 403,
    title: 'Not allowed',
    description: 'You are signed in, but your role (or your API key) lacks the permission this operation needs. `permission` names it.',
  },
  csrf_failed: {
    status: 403,
    title: 'CSRF token missing or wrong',
    description:
      'A request authenticated by the session cookie that changes something must carry the `X-CSRF-Token` header with the token returned by POST /v1/auth/login (or GET /v1/auth/me). API-key requests do not need it.',
  },
  weak_password: {
    status: 422,
    title: 'Password too weak',
    description:
      'The password must be at least 12 characters long, differ from the email address and not be a commonly used password. `reasons` lists what failed; the password itself is never echoed.',
  },
  staff_email_taken: {
    status: 409,
    title: 'Staff email already used',
    description: 'Another staff account already uses this email address.',
  },
  staff_not_found: {
    status: 404,
    title: 'Staff account not found',
    description: 'No staff account has this id.',
  },
  last_owner: {
    status: 409,
    title: 'The last owner cannot be removed',
    description: 'At least one active staff account must keep the owner role, or nobody could manage staff and keys. Make someone else owner first.',
  },
  api_key_not_found: {
    status: 404,
    title: 'API key not found',
    description: 'No API key has this id.',
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
  unknown_purpose: {
    status: 422,
    title: 'Unknown purpose',
    description:
      'The purpose is not declared in the policy. Every use of personal data names one of the policy\'s purposes, and an API key can be scoped only to declared purposes (`purpose` names the one that is not).',
  },
  unknown_subject_kind: {
    status: 422,
    title: 'Unknown subject kind',
    description: 'The subject kind is not declared under subject_kinds in the policy.',
  },
  category_not_collected: {
    status: 422,
    title: 'Category not collected',
    description:
      "The policy does not collect this data category (from this source, or about any of the subject's kinds). Nothing was stored. Declare it under collection in pledge.yaml if you really collect it.",
  },
  category_not_permitted: {
    status: 422,
    title: 'Category not allowed for the purpose',
    description: 'The purpose the data is written for may not use this category under the policy. Nothing was stored.',
  },
  unexpected_partner: {
    status: 422,
    title: 'Partner without a partner source',
    description:
      'A write names a `partner` but its `source` is not `partner`, so the data would not be recorded as coming from that partner. Send `source: partner` with the partner\'s id from the policy\'s sources, or leave `partner` out. `field` names the member. Nothing was stored.',
  },
  invalid_identity: {
    status: 422,
    title: 'Invalid identity',
    description: 'An email address, phone number, user id, external id or cookie id is malformed, or holds control or invisible formatting characters. The value is never echoed.',
  },
  invalid_field_value: {
    status: 422,
    title: 'Invalid field value',
    description: 'A field value is not acceptable (larger than 64 KB, nested more than 32 levels deep, or not the expected form, e.g. a date of birth that is not YYYY-MM-DD, or a user.contact.email that is not an email address). Nothing was stored.',
  },
  identity_taken: {
    status: 409,
    title: 'Identity already belongs to another subject',
    description: 'Another subject already has this identity. Look it up and update that subject instead, or merge them.',
  },
  below_minimum_age: {
    status: 422,
    title: 'Below the minimum age',
    description: "The data shows the person is younger than the policy's minimum age: a birth date, birth year, age or age range, as a category or as a key anywhere in a field's value (docs/vault.md, the age gate). Nothing was stored.",
  },
  subject_not_found: {
    status: 404,
    title: 'Subject not found',
    description: 'No subject has this id.',
  },
  subject_erased: {
    status: 410,
    title: 'Subject erased',
    description: "The subject was erased: its data key is destroyed and its data can never be read again. Only the erasure's record remains.",
  },
  subject_closed: {
    status: 409,
    title: 'Subject closed',
    description: 'The subject\'s account is closed; its data is kept only as the retention rules say and cannot be added to.',
  },
  purpose_not_permitted: {
    status: 403,
    title: 'Purpose not permitted',
    description:
      'Personal data cannot be used for this purpose now: the person has not consented or has objected (or opted out of sharing with the recipient the read names), processing is restricted, the caller is not allowed this purpose, or the recipient the read names does not receive data for it. `reason` says which.',
  },
  justification_required: {
    status: 400,
    title: 'Justification required',
    description: 'Your role must state why it reads this person\'s data: send it in the X-Pledge-Justification header. It is written to the audit log.',
  },
  batch_rejected: {
    status: 422,
    title: 'Batch rejected',
    description: 'At least one item of the batch is invalid, so nothing was written (a batch is all or nothing). `errors` lists each failing item by index.',
  },
  data_integrity_failed: {
    status: 500,
    title: 'Stored data failed its integrity check',
    description:
      'A ciphertext did not decrypt: it was altered, moved to another row, or the master key is not the one it was written with. Nothing was returned. Check PLEDGE_MASTER_KEY and run `pledge audit verify`.',
  },
  internal: {
    status: 500,
    title: 'Internal error',
    description: 'Something failed inside Pledge. The error is logged with the request id given in the response.',
  },
  // consent
  unknown_topic: {
    status: 422,
    title: 'Unknown communication topic',
    description: 'The topic is not declared under communications in the policy (policy_change and request_notice are built in). Nothing was stored.',
  },
  unknown_recipient: {
    status: 422,
    title: 'Unknown recipient',
    description: 'The recipient is not declared under recipients in the policy. Choices about sharing, sharing checks and reads for a recipient name one of the policy\'s recipients by id. Nothing was stored.',
  },
  consent_not_optional: {
    status: 422,
    title: 'No choice to record',
    description:
      'The person has no choice to make about this, so none can be granted, refused or withdrawn: the purpose is necessary (choice none) or a legal obligation, the topic is service mail that is always sent, or the recipient is not declared with opt_out: true. `target` names it. Nothing was stored.',
  },
  consent_conflict: {
    status: 422,
    title: 'Contradictory consent choices',
    description: 'One request decides the same purpose, topic or recipient two ways (e.g. grants and denies it). Send one decision per purpose, topic or recipient; nothing was stored. `target` names it.',
  },
  visitor_already_identified: {
    status: 409,
    title: 'Visitor already identified',
    description: 'This visitor id was already identified as another subject, and its choices joined that person\'s. A visitor id is identified as one subject only: issue a new visitor id for the browser. Nothing was changed.',
  },
  receipt_not_found: {
    status: 404,
    title: 'Consent receipt not found',
    description: 'No consent receipt has this id.',
  },
  // --- comms: outbox, unsubscribe, policy publication
  unsubscribe_token_invalid: {
    status: 400,
    title: 'Unsubscribe link not valid',
    description: 'The unsubscribe token is malformed, its signature does not match, or it does not name the message, person and topic it was issued for. Use the link from the message itself.',
  },
  unsubscribe_token_expired: {
    status: 410,
    title: 'Unsubscribe link expired',
    description: 'The unsubscribe link is older than its validity period. Use the link in a more recent message, or change your preferences in the privacy center.',
  },
  message_not_found: {
    status: 404,
    title: 'Message not found',
    description: 'No outbox message has this id.',
  },
  message_not_failed: {
    status: 409,
    title: 'Message has not failed',
    description: 'Only a message that failed after its last attempt can be retried; this one is queued, being sent, sent, stored or dropped. `messageStatus` says which.',
  },
  unknown_template: {
    status: 422,
    title: 'Unknown mail template',
    description: 'No mail template has this name.',
  },
  mail_not_allowed: {
    status: 422,
    title: 'This message cannot be queued',
    description: 'The message has no valid recipient (a subject id or an address), or a marketing message is addressed to someone who is not a subject. The message says which.',
  },
  policy_version_not_found: {
    status: 404,
    title: 'Policy version not found',
    description: 'No published policy version has this id.',
  },
  invalid_effective_date: {
    status: 422,
    title: 'Effective date not valid',
    description: 'A policy version takes effect on a calendar date written YYYY-MM-DD (2027-02-30 is not one). Nothing was published.',
  },
  effective_date_too_early: {
    status: 422,
    title: 'Effective date too early for a material change',
    description:
      'A material change cannot take effect before today, nor before the advance notice the policy in force promises (changes.advance_notice): people must be told first. `details.earliest` is the first date allowed. Nothing was published.',
  },
  // requests
  request_not_found: {
    status: 404,
    title: 'Request not found',
    description:
      'No data-subject request has this id.',
  },
  request_type_not_offered: {
    status: 422,
    title: 'Right not offered by the policy',
    description:
      'The policy does not list this right under rights.requests, so no request of this type can be logged. Add the right to pledge.yaml if you honour it.',
  },
  invalid_request_details: {
    status: 422,
    title: 'Request details not valid',
    description:
      'The request lacks what its type needs or has something it cannot use: a correction without corrections, an unknown category, a received date in the future, a dry run of a request that is not an erasure. The message says which.',
  },
  invalid_request_transition: {
    status: 409,
    title: 'Request cannot move to this status',
    description:
      'Requests follow a fixed lifecycle (identity_unverified → pending → approved or denied → in_progress → completed, failed or canceled). `from`, `to` and `allowed` say where the request is and where it may go.',
  },
  verification_code_invalid: {
    status: 422,
    title: 'Wrong verification code',
    description:
      'The code does not match the last one sent for this request (or none was sent). `attemptsLeft` says how many tries remain before a new code is needed.',
  },
  verification_code_expired: {
    status: 422,
    title: 'Verification code expired',
    description:
      'Codes are valid for 15 minutes. Ask for a new one (POST /v1/requests/{id}/resend).',
  },
  verification_locked: {
    status: 429,
    title: 'Too many wrong codes',
    description:
      'After 5 wrong codes the current code stops working. Send a new code, or have a privacy officer verify the person by other means (verification override, with a reason).',
  },
  verification_resend_limit: {
    status: 429,
    title: 'No more codes for this request',
    description:
      'At most 5 codes are sent for one request. A privacy officer can verify the person by other means (verification override, with a reason).',
  },
  reason_required: {
    status: 422,
    title: 'Reason required',
    description:
      'Denying, canceling, overriding verification and (when the policy says so) extending a deadline need a reason in words; it is recorded in the audit log and, where the person is told, sent to them.',
  },
  extension_not_allowed: {
    status: 409,
    title: 'Deadline cannot be extended',
    description:
      'The policy gives this right no extension, the deadline was already extended once, or the request is no longer open.',
  },
  package_not_available: {
    status: 404,
    title: 'Package not available',
    description:
      'The download link is not valid or has expired, the package was deleted after the period the policy sets (rights.packages.expire_after), or the request has no package. Ask for a new link while the package exists.',
  },
  datastore_unavailable: {
    status: 503,
    title: 'Datastore unavailable',
    description:
      'A datastore a request must reach is down, timed out or is not configured. The request task is retried with backoff; the request is not completed until every datastore is done.',
  },
  // retention
  subject_on_hold: {
    status: 409,
    title: 'The subject is under a legal hold',
    description: 'A legal hold keeps this person\'s data: it cannot be erased until a privacy officer releases the hold (POST /v1/retention/holds/{id}/release). Erasure requests restrict the data instead.',
  },
  hold_not_found: {
    status: 404,
    title: 'Legal hold not found',
    description: 'No legal hold has this id.',
  },
  hold_invalid: {
    status: 422,
    title: 'Legal hold invalid',
    description: 'A legal hold needs a reason (1 to 500 characters) and, if it has an expiry, a date and time in the future.',
  },
  retention_sweep_running: {
    status: 409,
    title: 'Retention sweep already running',
    description: 'Another retention sweep holds the lease (in this or another process sharing the database). Only one runs at a time; try again when it has finished.',
  },
  // --- datasets ---
  dataset_not_found: {
    status: 404,
    title: 'Datastore not found',
    description: 'The policy declares no connected datastore with this id (or the datastore declares no such collection). `pledge policy validate` lists what is declared.',
  },
  dataset_not_configured: {
    status: 500,
    title: 'Datastore not configured',
    description:
      'The environment variable the policy names for this datastore (connection.env, or connection.secret_env for an HTTP endpoint) is not set, or does not hold a postgres://, mysql://, mariadb://, sqlite: or https:// URL. Set it where Pledge runs; the policy never holds the credential.',
  },
  dataset_unavailable: {
    status: 503,
    title: 'Datastore unavailable',
    description:
      'A connected datastore could not be reached, refused the connection or did not answer within its timeout. An erasure or correction is one transaction per datastore, so nothing was changed there; retry later.',
  },
  dataset_query_failed: {
    status: 502,
    title: 'Datastore refused a query',
    description:
      'A connected datastore refused a query: a table or column the policy declares does not exist, or a constraint (a foreign key that restricts deletes, a NOT NULL column set to null) stopped the change. The transaction was rolled back; `reason` carries the database code. Fix the declaration in the policy (erasure strategy, references) and retry.',
  },
  dataset_protocol_error: {
    status: 502,
    title: 'Datastore endpoint answered wrongly',
    description: "An HTTP datastore answered with an unexpected status or a body that does not follow Pledge's dataset protocol (docs/datasets.md).",
  },
  dataset_host_not_allowed: {
    status: 500,
    title: 'Datastore host not allowed',
    description: 'An HTTP datastore URL points at a host that is not listed in PLEDGE_DATASET_HOSTS. Add the host (or host:port) there if it really is the company\'s endpoint.',
  },
  dataset_no_timestamp: {
    status: 422,
    title: 'Collection has no timestamp',
    description: 'Rows can only be expired by age in a collection that declares its timestamp column (datasets[].collections[].timestamp in the policy).',
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
