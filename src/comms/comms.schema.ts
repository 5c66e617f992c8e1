import Type from 'typebox';

/** Request and response schemas of the comms routes (validation, serialisation, OpenAPI). */
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);

export const MESSAGE_STATUSES = ['queued', 'sending', 'sent', 'stored', 'dropped', 'failed'] as const;
export const MESSAGE_KINDS = ['service', 'marketing', 'policy_change', 'request_notice'] as const;

export const MessageIdParams = Type.Object({ id: Type.String({ pattern: '^msg_[0-9a-hjkmnp-tv-z]{26}$', description: 'A message id (msg_…).' }) }, { additionalProperties: false });

export const OutboxQuery = Type.Object(
  {
    status: Type.Optional(Type.Enum([...MESSAGE_STATUSES])),
    kind: Type.Optional(Type.Enum([...MESSAGE_KINDS])),
    subject: Type.Optional(Type.String({ pattern: '^sub_[0-9a-hjkmnp-tv-z]{26}$' })),
    after: Type.Optional(Type.String({ pattern: '^msg_[0-9a-hjkmnp-tv-z]{26}$', description: 'Page on: ids after this one.' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100 })),
  },
  { additionalProperties: false },
);

export const MessageSummarySchema = Type.Object({
  id: Type.String(),
  kind: Type.Enum([...MESSAGE_KINDS]),
  topic: Type.String(),
  purpose: Nullable(Type.String()),
  subjectId: Nullable(Type.String()),
  template: Type.String(),
  policyVersionId: Nullable(Type.String()),
  status: Type.Enum([...MESSAGE_STATUSES]),
  attempts: Type.Integer(),
  nextAttemptAt: Type.String(),
  lastError: Nullable(Type.String({ description: 'A code (e.g. "ECONNECTION", "EENVELOPE 550", "not_allowed", "no_address"), never a server\'s text.' })),
  createdAt: Type.String(),
  updatedAt: Type.String(),
  sentAt: Nullable(Type.String()),
});

export const OutboxListSchema = Type.Object({
  messages: Type.Array(MessageSummarySchema),
  counts: Type.Record(Type.String(), Type.Integer(), { description: 'Messages by status, in the whole outbox.' }),
});

export const UnsubscribeQuery = Type.Object({ token: Type.String({ minLength: 1, maxLength: 1000 }) }, { additionalProperties: false });

export const UnsubscribedSchema = Type.Object({ status: Type.Literal('unsubscribed'), topic: Type.String() });

export const QueueMessageBodySchema = Type.Object(
  {
    topic: Type.String({ minLength: 1, maxLength: 100, description: 'A communication topic declared in the policy (service or marketing).' }),
    subjectId: Type.String({ pattern: '^sub_[0-9a-hjkmnp-tv-z]{26}$', description: 'The person it goes to: the address is their email identity in the vault, read at send time.' }),
    subject: Type.String({ minLength: 1, maxLength: 200, description: 'The subject line (reduced to one line).' }),
    body: Type.String({ minLength: 1, maxLength: 100_000, description: 'Plain text; the HTML part is made from it, escaped.' }),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'How to greet the person.' })),
    idempotencyKey: Type.String({ minLength: 1, maxLength: 200, description: 'Your name for this message ("order o_123 shipped"): the same key for the same person and topic queues nothing new.' }),
    sendAt: Type.Optional(Type.String({ format: 'date-time', description: 'Not before this time; default now.' })),
  },
  { additionalProperties: false },
);

export const QueuedMessageSchema = Type.Object({ ...MessageSummarySchema.properties, created: Type.Boolean({ description: 'False when a message with this idempotency key was already queued: that one is returned.' }) });

export const AcceptanceBodySchema = Type.Object(
  {
    version: Type.Optional(Type.String({ pattern: '^pol_[0-9a-hjkmnp-tv-z]{26}$', description: 'The policy version accepted (default: the version in force).' })),
    method: Type.Optional(Type.Enum(['explicit', 'continued_use'], { default: 'explicit' })),
  },
  { additionalProperties: false },
);

export const AcceptanceSchema = Type.Object({ subjectId: Type.String(), versionId: Type.String(), acceptedAt: Type.String(), created: Type.Boolean() });
