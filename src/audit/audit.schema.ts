import Type from 'typebox';

/** Request and response schemas of the audit routes (validation, serialisation, OpenAPI). */
const Seq = Type.Integer({ minimum: 1, maximum: 2_147_483_647, description: 'An entry number in the chain (1, 2, …).' });
const Hash = Type.String({ pattern: '^[A-Za-z0-9_-]{43}$', description: 'SHA-256, base64url.' });

export const EntriesQuery = Type.Object(
  {
    fromSeq: Type.Optional(Seq),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, description: 'Entries per page (default 100).' })),
    // Ids and action codes only: an email here would be refused by the audit entry of the read anyway.
    targetId: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,200}$', description: 'Only entries about this record (sub_…, req_…, stf_…).' })),
    action: Type.Optional(Type.String({ pattern: '^[a-z_]+(\\.[a-z_]+)*$', maxLength: 100, description: 'Only entries of this action (data.read, subject.erased…).' })),
  },
  { additionalProperties: false },
);

const DetailValue = Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null(), Type.Array(Type.String())]);

export const EntrySchema = Type.Object({
  seq: Type.Integer(),
  id: Type.String(),
  at: Type.String({ format: 'date-time' }),
  actor: Type.Object({ type: Type.String(), id: Type.String() }),
  action: Type.String(),
  target: Type.Optional(Type.Object({ type: Type.String(), id: Type.String() })),
  purpose: Type.Optional(Type.String()),
  details: Type.Record(Type.String(), DetailValue),
  hash: Type.String(),
});

export const EntriesPageSchema = Type.Object({
  entries: Type.Array(EntrySchema),
  nextSeq: Type.Union([Type.Integer(), Type.Null()], { description: 'fromSeq of the next page; null at the end.' }),
});

export const CheckpointsQuery = Type.Object(
  { fromSeq: Type.Optional(Seq), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })) },
  { additionalProperties: false },
);

export const CheckpointsSchema = Type.Object({
  checkpoints: Type.Array(
    Type.Object({
      seq: Type.Integer(),
      hash: Type.String(),
      signedAt: Type.String({ format: 'date-time' }),
      keyId: Type.String(),
      signature: Type.String({ description: 'Ed25519 over `pledge-audit-checkpoint:v1:<seq>:<hash>`, base64url.' }),
    }),
  ),
  keyId: Type.String({ description: 'The audit signing key of this engine.' }),
  publicKey: Type.String({ description: 'Its public key (SPKI PEM): keep a copy to check checkpoints without Pledge.' }),
});

export const VerifyBodySchema = Type.Object(
  {
    fromSeq: Type.Optional(Seq),
    expect: Type.Optional(
      Type.Object({ seq: Seq, hash: Hash }, { additionalProperties: false, description: 'The head an earlier verification reported, kept outside the database: it must still be there.' }),
    ),
  },
  { additionalProperties: false },
);

export const VerifyResultSchema = Type.Object({
  ok: Type.Boolean({ description: 'No problem found in what was verified.' }),
  entries: Type.Integer(),
  checkpoints: Type.Integer(),
  firstProblem: Type.Optional(Type.Object({ seq: Type.Integer(), problem: Type.String(), message: Type.String() })),
  head: Type.Optional(Type.Union([Type.Object({ seq: Type.Integer(), hash: Type.String() }), Type.Null()])),
  unsigned: Type.Optional(
    Type.Union([Type.Object({ fromSeq: Type.Integer(), toSeq: Type.Integer(), lastCheckpointSeq: Type.Union([Type.Integer(), Type.Null()]) }), Type.Null()], {
      description: 'Entries after the last signed checkpoint: removed together with the head, only `expect` shows it.',
    }),
  ),
  complete: Type.Optional(Type.Boolean({ description: 'false: the time budget ran out; verify again from nextSeq.' })),
  nextSeq: Type.Optional(Type.Integer()),
  keyId: Type.String(),
  seconds: Type.Number(),
});
