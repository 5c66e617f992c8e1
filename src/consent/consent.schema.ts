import Type from 'typebox';

/** Request and response schemas of the consent routes (validation, serialisation, OpenAPI). */
const SUBJECT_ID = '^sub_[0-9a-hjkmnp-tv-z]{26}$';
const VISITOR_ID = '^vis_[0-9a-hjkmnp-tv-z]{26}$';
const targetId = (description?: string) => Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z][a-z0-9_]*$', ...(description ? { description } : {}) });
const TARGET_ID = targetId();

export const SubjectIdParams = Type.Object({ id: Type.String({ pattern: SUBJECT_ID, description: 'A subject id (sub_…).' }) }, { additionalProperties: false });
export const VisitorIdParams = Type.Object({ id: Type.String({ pattern: VISITOR_ID, description: 'A visitor id (vis_…), as kept in the banner cookie.' }) }, { additionalProperties: false });
export const SubjectPurposeParams = Type.Object({ id: Type.String({ pattern: SUBJECT_ID }), purpose: TARGET_ID }, { additionalProperties: false });
export const VisitorPurposeParams = Type.Object({ id: Type.String({ pattern: VISITOR_ID }), purpose: TARGET_ID }, { additionalProperties: false });
export const SubjectRecipientParams = Type.Object({ id: Type.String({ pattern: SUBJECT_ID }), recipient: TARGET_ID }, { additionalProperties: false });
export const VisitorRecipientParams = Type.Object({ id: Type.String({ pattern: VISITOR_ID }), recipient: TARGET_ID }, { additionalProperties: false });
export const SharingQuery = Type.Object({ purpose: Type.Optional(targetId('Ask about this purpose only: the recipient must serve it, and the purpose must be allowed.')) }, { additionalProperties: false });
export const ReceiptIdParams = Type.Object({ id: Type.String({ format: 'uuid', description: 'consentReceiptID of the receipt.' }) }, { additionalProperties: false });
export const HolderQuery = Type.Object({ holder: Type.String({ pattern: `${SUBJECT_ID}|${VISITOR_ID}`, description: 'A subject id (sub_…) or visitor id (vis_…).' }) }, { additionalProperties: false });

const Action = Type.Enum(['granted', 'denied', 'withdrawn'], { description: 'granted, denied (refused when asked) or withdrawn (consent taken back; recorded even with no earlier grant in the ledger, e.g. imported history, and then refuses like denied). Necessary purposes, legal obligations and service mail take no choice at all.' });
const Source = Type.Enum(['banner', 'privacy_center', 'api', 'email_link', 'staff', 'import'], {
  description: 'Where the choice was made. Default: staff for a signed-in staff member, api for an API key. Browser signals (GPC, DNT) are read from the request headers, never sent here.',
});
const BannerVersion = Type.String({ minLength: 1, maxLength: 40, pattern: '^[A-Za-z0-9._-]+$', description: 'Version of the banner or form that showed the choice (evidence).' });

export const ChoiceSchema = Type.Object(
  {
    purpose: Type.Optional(TARGET_ID),
    topic: Type.Optional(TARGET_ID),
    recipient: Type.Optional(targetId('A recipient the policy declares with opt_out: true: whether data may go to it at all.')),
    action: Action,
  },
  { additionalProperties: false, description: 'One decision on a purpose, a communication topic or a recipient (name exactly one).' },
);

export const RecordBodySchema = Type.Object(
  {
    holder: Type.String({ pattern: `${SUBJECT_ID}|${VISITOR_ID}`, description: 'Whose choice: a subject id (sub_…) or an anonymous visitor id (vis_…).' }),
    source: Type.Optional(Source),
    bannerVersion: Type.Optional(BannerVersion),
    choices: Type.Array(ChoiceSchema, { minItems: 1, maxItems: 200 }),
  },
  { additionalProperties: false },
);

export const IdentifyBodySchema = Type.Object({ subjectId: Type.String({ pattern: SUBJECT_ID, description: 'The subject the visitor turned out to be.' }) }, { additionalProperties: false });

export const PreferencesBodySchema = Type.Object(
  {
    purposes: Type.Optional(Type.Record(Type.String({ pattern: '^[a-z][a-z0-9_]*$' }), Type.Boolean(), { maxProperties: 200, description: 'true allows a purpose, false refuses or withdraws it.' })),
    topics: Type.Optional(Type.Record(Type.String({ pattern: '^[a-z][a-z0-9_]*$' }), Type.Boolean(), { maxProperties: 200, description: 'Communication topics (newsletter, product news, …): true to receive, false to stop.' })),
    sharingWithAffiliates: Type.Optional(Type.Boolean({ description: 'false opts out of sharing with every recipient with role affiliate the policy lets people opt out of (opt_out: true); the purposes themselves are not touched.' })),
    recipients: Type.Optional(Type.Record(Type.String({ pattern: '^[a-z][a-z0-9_]*$' }), Type.Boolean(), { maxProperties: 200, description: 'Recipients declared with opt_out: true: true to let data go to one, false to opt out of sharing with it.' })),
    profiling: Type.Optional(Type.Boolean({ description: 'false opts out of every purpose marked profiling: true.' })),
    source: Type.Optional(Source),
    bannerVersion: Type.Optional(BannerVersion),
  },
  { additionalProperties: false, minProperties: 1 },
);

const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()]);
const ActionOut = Type.Enum(['granted', 'denied', 'withdrawn', 'opted_out_by_signal']);
const SourceOut = Type.Enum(['banner', 'privacy_center', 'api', 'email_link', 'gpc', 'dnt', 'staff', 'import']);
const TargetKind = Type.Enum(['purpose', 'topic', 'recipient']);

export const RecordedSchema = Type.Object({
  holder: Type.String(),
  receiptId: Type.Union([Type.String(), Type.Null()]),
  events: Type.Array(Type.Object({ id: Type.String(), kind: TargetKind, target: Type.String(), action: ActionOut, source: SourceOut })),
});

export const IdentifiedSchema = Type.Object({ ...RecordedSchema.properties, merged: Type.Integer() });

export const DecisionSchema = Type.Object({
  holder: Type.String(),
  purpose: Type.String(),
  allowed: Type.Boolean(),
  reason: Type.String(),
  decision: Type.Union([ActionOut, Type.Null()]),
  decidedAt: Nullable(Type.String()),
});

export const SharingDecisionSchema = Type.Object({
  holder: Type.String(),
  recipient: Type.String(),
  purpose: Nullable(Type.String()),
  allowed: Type.Boolean(),
  reason: Type.String(),
  purposes: Type.Array(Type.String(), { description: "The recipient's purposes for which data may go to it now (none when the person refused it)." }),
  decision: Type.Union([ActionOut, Type.Null()], { description: 'The last decision recorded on the recipient, if any.' }),
  decidedAt: Nullable(Type.String()),
});

export const OverviewSchema = Type.Object({
  holder: Type.String(),
  purposes: Type.Array(
    Type.Object({
      id: Type.String(),
      name: Type.String(),
      choice: Type.Enum(['opt_in', 'opt_out', 'none']),
      optional: Type.Boolean(),
      profiling: Type.Boolean(),
      allowed: Type.Boolean(),
      decision: Type.Union([ActionOut, Type.Null()]),
      source: Type.Union([SourceOut, Type.Null()]),
      decidedAt: Nullable(Type.String()),
    }),
  ),
  topics: Type.Array(
    Type.Object({
      id: Type.String(),
      name: Type.String(),
      kind: Type.String(),
      purpose: Type.String(),
      optional: Type.Boolean(),
      subscribed: Type.Boolean(),
      receives: Type.Boolean(),
      decision: Type.Union([ActionOut, Type.Null()]),
      decidedAt: Nullable(Type.String()),
    }),
  ),
  sharing: Type.Object({
    recipients: Type.Array(
      Type.Object({
        id: Type.String(),
        name: Type.String(),
        role: Type.String(),
        purposes: Type.Array(Type.String(), { description: 'The purposes data goes to it for, under the policy.' }),
        optional: Type.Boolean({ description: 'The person can opt out of sharing with it (opt_out: true).' }),
        shares: Type.Boolean({ description: 'The person has not refused it and at least one of its purposes is allowed now.' }),
        decision: Type.Union([ActionOut, Type.Null()]),
        decidedAt: Nullable(Type.String()),
      }),
    ),
    affiliates: Type.Object({
      recipients: Type.Array(Type.String(), { description: 'The affiliates the person can opt out of: what sharingWithAffiliates switches.' }),
      purposes: Type.Array(Type.String(), { description: 'The purposes they serve.' }),
      optedOut: Type.Boolean({ description: 'There are such affiliates and the person refused every one of them.' }),
    }),
  }),
  profiling: Type.Object({ purposes: Type.Array(Type.String()), optedOut: Type.Boolean() }),
});

export const HistorySchema = Type.Object({
  holder: Type.String(),
  events: Type.Array(
    Type.Object({
      id: Type.String(),
      kind: TargetKind,
      target: Type.String(),
      action: ActionOut,
      source: SourceOut,
      policyVersion: Type.String(),
      decidedAt: Type.String(),
      recordedAt: Type.String(),
      receiptId: Type.String(),
      mergedFrom: Nullable(Type.String()),
      evidence: Type.Object({ country: Nullable(Type.String()), uaFamily: Nullable(Type.String()), bannerVersion: Nullable(Type.String()) }),
    }),
  ),
});

export const VisitorSchema = Type.Object({ id: Type.String() });
