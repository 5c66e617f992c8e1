import Type from 'typebox';
import { RIGHT_TYPES } from '../policy/policy.schema.js';
import { IdentityInputSchema } from '../subjects/subjects.schema.js';

/** Request and response schemas of the requests routes (validation, serialisation, OpenAPI). */
const STATUSES = ['identity_unverified', 'pending', 'approved', 'denied', 'in_progress', 'completed', 'failed', 'canceled'] as const;
const CHANNELS = ['api', 'privacy_center', 'email', 'postal', 'phone', 'in_person'] as const;

export const RequestIdParams = Type.Object({ id: Type.String({ pattern: '^req_[0-9a-hjkmnp-tv-z]{26}$', description: 'A request id (req_…).' }) }, { additionalProperties: false });

export const PackageTokenParams = Type.Object({ token: Type.String({ minLength: 10, maxLength: 200, description: 'The signed token of a download link.' }) }, { additionalProperties: false });

export const CreateRequestSchema = Type.Object(
  {
    type: Type.Enum([...RIGHT_TYPES], { description: 'The right exercised.' }),
    identities: Type.Array(IdentityInputSchema, { minItems: 1, maxItems: 10, description: 'How the person is known; an email address receives the verification code.' }),
    channel: Type.Optional(Type.Enum([...CHANNELS], { description: 'How the request arrived (default api).' })),
    receivedAt: Type.Optional(Type.String({ format: 'date-time', description: 'When it arrived (a letter, a call): the deadline counts from here. Default: now.' })),
    corrections: Type.Optional(
      Type.Record(Type.String({ pattern: '^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)*$' }), Type.Unknown(), { minProperties: 1, maxProperties: 100, description: 'correction: the new value of each category.' }),
    ),
    purposes: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 50, uniqueItems: true, description: 'objection, withdraw_consent: the purposes concerned.' })),
  },
  { additionalProperties: false },
);

export const ListRequestsQuery = Type.Object(
  {
    status: Type.Optional(Type.Enum([...STATUSES])),
    type: Type.Optional(Type.Enum([...RIGHT_TYPES])),
    overdue: Type.Optional(Type.Boolean({ description: 'Only open requests past their deadline.' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200 })),
    after: Type.Optional(Type.String({ pattern: '^req_[0-9a-hjkmnp-tv-z]{26}$', description: 'The `next` of the previous page.' })),
  },
  { additionalProperties: false },
);

export const VerifySchema = Type.Object({ code: Type.String({ pattern: '^\\s*[0-9]{6}\\s*$', description: 'The six-digit code the person received.' }) }, { additionalProperties: false });

export const ReasonSchema = Type.Object({ reason: Type.String({ minLength: 1, maxLength: 2000, description: 'In words; recorded in the audit log.' }) }, { additionalProperties: false });

export const ExtendSchema = Type.Object({ reason: Type.Optional(Type.String({ minLength: 1, maxLength: 2000, description: 'Why more time is needed; the person is told.' })) }, { additionalProperties: false });

const Timestamp = Type.String({ description: 'ISO 8601, UTC' });
const NullableTimestamp = Type.Union([Timestamp, Type.Null()]);
const NullableString = Type.Union([Type.String(), Type.Null()]);

export const RequestViewSchema = Type.Object({
  id: Type.String(),
  type: Type.String(),
  status: Type.Enum([...STATUSES]),
  channel: Type.String(),
  identityKinds: Type.Array(Type.String()),
  receivedAt: Timestamp,
  dueAt: Timestamp,
  effectiveDueAt: Timestamp,
  extended: Type.Boolean(),
  extensionReason: NullableString,
  overdue: Type.Boolean(),
  verified: Type.Boolean(),
  verification: NullableString,
  verifiedAt: NullableTimestamp,
  decisionReason: NullableString,
  result: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  failure: NullableString,
  createdAt: Timestamp,
  updatedAt: Timestamp,
  completedAt: NullableTimestamp,
  tasks: Type.Array(
    Type.Object({
      id: Type.String(),
      datastore: Type.String(),
      state: Type.String(),
      attempts: Type.Integer(),
      lastError: NullableString,
      summary: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
      completedAt: NullableTimestamp,
    }),
  ),
  packages: Type.Array(Type.Object({ format: Type.String(), bytes: Type.Integer(), expiresAt: Timestamp, deleted: Type.Boolean() })),
});

export const RequestListSchema = Type.Object({ requests: Type.Array(RequestViewSchema), next: NullableString });

export const DryRunSchema = Type.Object({ requestId: Type.String(), datastores: Type.Record(Type.String(), Type.Unknown()) });

export const LinksSchema = Type.Object({ links: Type.Record(Type.String(), Type.String()) });
