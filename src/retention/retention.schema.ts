import Type from 'typebox';
import { RETENTION_ACTIONS, RETENTION_TRIGGERS } from '../policy/policy.schema.js';

/** Request and response schemas of the retention routes (validation, serialisation, OpenAPI). */
export const HoldIdParams = Type.Object({ id: Type.String({ pattern: '^hld_[0-9a-hjkmnp-tv-z]{26}$', description: 'A legal hold id (hld_…).' }) }, { additionalProperties: false });

export const PlaceHoldSchema = Type.Object(
  {
    subjectId: Type.String({ pattern: '^sub_[0-9a-hjkmnp-tv-z]{26}$', description: 'The subject whose data must be kept.' }),
    reason: Type.String({ minLength: 1, maxLength: 500, description: 'Why (a matter or case reference). Kept in the hold record, not in the audit log.' }),
    expiresAt: Type.Optional(Type.String({ format: 'date-time', description: 'The hold lapses by itself at this time; without it, it lasts until released.' })),
  },
  { additionalProperties: false },
);

export const HoldQuery = Type.Object(
  {
    subjectId: Type.Optional(Type.String({ pattern: '^sub_[0-9a-hjkmnp-tv-z]{26}$' })),
    all: Type.Optional(Type.Boolean({ description: 'Also released and lapsed holds.' })),
  },
  { additionalProperties: false },
);

const NullableTimestamp = Type.Union([Type.String({ format: 'date-time' }), Type.Null()]);

export const HoldSchema = Type.Object({
  id: Type.String(),
  subjectId: Type.String(),
  reason: Type.String(),
  placedBy: Type.String(),
  placedAt: Type.String({ format: 'date-time' }),
  expiresAt: NullableTimestamp,
  releasedAt: NullableTimestamp,
  releasedBy: Type.Union([Type.String(), Type.Null()]),
  active: Type.Boolean(),
});

export const HoldListSchema = Type.Object({ holds: Type.Array(HoldSchema) });

export const RunSweepSchema = Type.Object(
  { dryRun: Type.Optional(Type.Boolean({ description: 'Count what would be removed, change nothing.' })) },
  { additionalProperties: false },
);

const OutcomeSchema = Type.Object({
  rule: Type.String(),
  target: Type.String({ description: 'vault, or dataset:<datastore>/<collection>' }),
  category: Type.String({ description: 'The data category; "subject" for closed accounts crypto-shredded whole.' }),
  action: Type.Enum([...RETENTION_ACTIONS, 'erase', 'keep']),
  trigger: Type.Union([Type.Enum([...RETENTION_TRIGGERS]), Type.Null()]),
  rows: Type.Integer({ description: 'Removed, or in a dry run, that would be.' }),
  keptByException: Type.Integer({ description: 'Past the rule but kept, restricted, by a legal exception.' }),
  skippedByHold: Type.Integer({ description: 'Past retention but left alone: the subject is under a legal hold.' }),
  exception: Type.Optional(Type.String()),
  note: Type.Optional(Type.String()),
});

export const ReportSchema = Type.Object({
  dryRun: Type.Boolean(),
  at: Type.String({ format: 'date-time', description: 'The instant every deadline was measured from.' }),
  outcomes: Type.Array(OutcomeSchema),
  totals: Type.Object({ rows: Type.Integer(), keptByException: Type.Integer(), skippedByHold: Type.Integer() }),
  stopped: Type.Optional(Type.Boolean({ description: 'The sweep was stopped before the end (shutdown); the next one continues.' })),
});
