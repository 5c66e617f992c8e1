import Type from 'typebox';
import { IDENTITY_KINDS } from './identities.js';
import { MAX_BATCH } from './subjects.service.js';

/** Request and response schemas of the subjects routes (validation, serialisation, OpenAPI). */
export const SubjectIdParams = Type.Object({ id: Type.String({ pattern: '^sub_[0-9a-hjkmnp-tv-z]{26}$', description: 'A subject id (sub_…).' }) }, { additionalProperties: false });

export const IdentityInputSchema = Type.Object(
  {
    kind: Type.Enum([...IDENTITY_KINDS], { description: 'email, user_id, phone, external_id or cookie_id' }),
    value: Type.String({ minLength: 1, maxLength: 320, description: 'Normalised before use (emails: case, spaces, Unicode NFC, the domain in ASCII).' }),
  },
  { additionalProperties: false },
);

export const DataWriteSchema = Type.Object(
  {
    purpose: Type.String({ minLength: 1, maxLength: 64, description: 'The purpose the data is collected for (a purpose id of the policy).' }),
    source: Type.Enum(['person', 'automatic', 'partner', 'other_person', 'staff'], { description: 'Where the data comes from.' }),
    partner: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'With source partner: the source id from the policy.' })),
    fields: Type.Record(Type.String({ pattern: '^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)*$' }), Type.Unknown(), {
      minProperties: 1,
      maxProperties: 200,
      description: 'Values by data category, e.g. {"user.name": "Jane Doe", "user.contact.address": {...}}.',
    }),
  },
  { additionalProperties: false },
);

export const CreateSubjectSchema = Type.Object(
  {
    kinds: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 20, description: 'Subject kinds from the policy.' }),
    identities: Type.Optional(Type.Array(IdentityInputSchema, { maxItems: 20 })),
    data: Type.Optional(DataWriteSchema),
  },
  { additionalProperties: false },
);

export const BatchCreateSchema = Type.Object(
  { subjects: Type.Array(CreateSubjectSchema, { minItems: 1, maxItems: MAX_BATCH }) },
  { additionalProperties: false },
);

export const UpdateSubjectSchema = Type.Object(
  {
    kinds: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 20 })),
    addIdentities: Type.Optional(Type.Array(IdentityInputSchema, { minItems: 1, maxItems: 20 })),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const BatchUpdateSchema = Type.Object(
  {
    subjects: Type.Array(
      Type.Object(
        {
          id: SubjectIdParams.properties.id,
          kinds: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 20, description: 'The kinds the subject has from now on.' })),
          addIdentities: Type.Optional(Type.Array(IdentityInputSchema, { minItems: 1, maxItems: 20 })),
          data: Type.Optional(DataWriteSchema),
        },
        { additionalProperties: false, minProperties: 2 },
      ),
      { minItems: 1, maxItems: MAX_BATCH },
    ),
  },
  { additionalProperties: false },
);

export const RestrictionSchema = Type.Object({ restricted: Type.Boolean() }, { additionalProperties: false });

export const PurposeQuery = Type.Object(
  {
    purpose: Type.String({ minLength: 1, maxLength: 64, description: 'The purpose of this read.' }),
    recipient: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'The recipient the data is read for (a recipient id of the policy): it must serve the purpose and not be refused by the person; only the categories both may have come back.' })),
  },
  { additionalProperties: false },
);

const Timestamp = Type.String({ description: 'ISO 8601, UTC' });
const NullableTimestamp = Type.Union([Timestamp, Type.Null()]);

export const SubjectSummarySchema = Type.Object({
  id: Type.String(),
  kinds: Type.Array(Type.String()),
  status: Type.Enum(['active', 'closed', 'erased']),
  restricted: Type.Boolean(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  lastActivityAt: Timestamp,
  closedAt: NullableTimestamp,
  erasedAt: NullableTimestamp,
});

export const BatchCreatedSchema = Type.Object({ subjects: Type.Array(Type.Object({ index: Type.Integer(), id: Type.String() })) });

export const PurposeReadSchema = Type.Object({
  subjectId: Type.String(),
  purpose: Type.String(),
  recipient: Type.Optional(Type.String({ description: 'The recipient named in the read, if any.' })),
  fields: Type.Record(
    Type.String(),
    Type.Object({
      value: Type.Unknown(),
      source: Type.String(),
      partner: Type.Union([Type.String(), Type.Null()]),
      collectedFor: Type.String(),
      collectedAt: Timestamp,
      updatedAt: Timestamp,
    }),
  ),
});

export const DataWrittenSchema = Type.Object({ categories: Type.Array(Type.String()) });
