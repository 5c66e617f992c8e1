import type { FastifyInstance, FastifyRequest } from 'fastify';
import Type, { type Static } from 'typebox';
import { holderSignals } from '../consent/consent.signals.js';
import { PledgeError } from '../core/errors.js';
import { actorAllows, type Actor } from '../staff/permissions.js';
import {
  BatchCreateSchema,
  BatchUpdateSchema,
  BatchCreatedSchema,
  CreateSubjectSchema,
  DataWriteSchema,
  DataWrittenSchema,
  IdentityInputSchema,
  PurposeQuery,
  PurposeReadSchema,
  RestrictionSchema,
  SubjectIdParams,
  SubjectSummarySchema,
  UpdateSubjectSchema,
} from './subjects.schema.js';
import { purposeReadJson } from './read-json.js';
import type { PurposeRead, SubjectsService } from './subjects.service.js';

/** The authenticated caller; the auth layer has already refused anonymous requests. */
function actorOf(request: FastifyRequest): Actor {
  const actor = (request as FastifyRequest & { actor?: Actor | null }).actor;
  if (!actor) throw new PledgeError('unauthenticated', 'sign in, or send an API key');
  return actor;
}

function requireAlso(actor: Actor, permission: 'data:write'): void {
  if (!actorAllows(actor, permission)) throw new PledgeError('forbidden', `writing data also needs the ${permission} permission`);
}

type Params = Static<typeof SubjectIdParams>;
const tags = ['subjects'];
// A batch of 1,000 subjects with their fields is larger than the default body limit.
const BATCH_BODY_LIMIT = 16 * 1024 * 1024;

/** Thin handlers: validate (schemas), authorise (config.permission), call the service. */
export function registerSubjectRoutes(app: FastifyInstance, subjects: SubjectsService): void {
  app.post<{ Body: Static<typeof CreateSubjectSchema> }>('/v1/subjects', {
    config: { permission: 'subjects:write' },
    schema: { tags, summary: 'Create a subject', description: 'With identities and, optionally, data written for a purpose (which then needs data:write too).', body: CreateSubjectSchema, response: { 201: SubjectSummarySchema } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    if (request.body.data) requireAlso(actor, 'data:write');
    return reply.status(201).send(await subjects.create(actor, request.body));
  });

  app.post<{ Body: Static<typeof BatchCreateSchema> }>('/v1/subjects/batch', {
    config: { permission: 'subjects:write' },
    bodyLimit: BATCH_BODY_LIMIT,
    schema: {
      tags,
      summary: 'Create up to 1,000 subjects at once',
      description: 'All or nothing: if any item is invalid, nothing is written and the problem lists every failing item by index.',
      body: BatchCreateSchema,
      response: { 201: BatchCreatedSchema },
    },
  }, async (request, reply) => {
    const actor = actorOf(request);
    if (request.body.subjects.some((item) => item.data)) requireAlso(actor, 'data:write');
    const created = await subjects.createMany(actor, request.body.subjects);
    return reply.status(201).send({ subjects: created.map((subject, index) => ({ index, id: subject.id })) });
  });

  app.patch<{ Body: Static<typeof BatchUpdateSchema> }>('/v1/subjects/batch', {
    config: { permission: 'subjects:write' },
    bodyLimit: BATCH_BODY_LIMIT,
    schema: {
      tags,
      summary: 'Update up to 1,000 subjects at once',
      description: 'Per item, the subject (id) and what changes: new kinds, added identities, data written for a purpose (which needs data:write too). All or nothing: if any item is invalid, nothing is written and the problem lists every failing item by index.',
      body: BatchUpdateSchema,
      response: { 200: BatchCreatedSchema },
    },
  }, async (request) => {
    const actor = actorOf(request);
    if (request.body.subjects.some((item) => item.data)) requireAlso(actor, 'data:write');
    const updated = await subjects.updateMany(actor, request.body.subjects);
    return { subjects: updated.map((subject, index) => ({ index, id: subject.id })) };
  });

  app.post<{ Body: Static<typeof IdentityInputSchema> }>('/v1/subjects/lookup', {
    config: { permission: 'subjects:read' },
    schema: { tags, summary: 'Find a subject by an identity', description: 'The identity travels in the body, never in the URL, so it stays out of logs.', body: IdentityInputSchema, response: { 200: SubjectSummarySchema } },
  }, async (request) => subjects.lookup(actorOf(request), request.body));

  app.get<{ Params: Params }>('/v1/subjects/:id', {
    config: { permission: 'subjects:read' },
    preHandler: holderSignals,
    schema: { tags, summary: "A subject's metadata (no personal data)", params: SubjectIdParams, response: { 200: SubjectSummarySchema } },
  }, async (request) => subjects.get(request.params.id));

  app.patch<{ Params: Params; Body: Static<typeof UpdateSubjectSchema> }>('/v1/subjects/:id', {
    config: { permission: 'subjects:write' },
    preHandler: holderSignals,
    schema: { tags, summary: 'Change kinds or add identities', params: SubjectIdParams, body: UpdateSubjectSchema, response: { 200: SubjectSummarySchema } },
  }, async (request) => subjects.update(actorOf(request), request.params.id, request.body));

  app.post<{ Params: Params }>('/v1/subjects/:id/close', {
    config: { permission: 'subjects:write' },
    preHandler: holderSignals,
    schema: { tags, summary: 'Close the account (retention rules with trigger account_closed start)', params: SubjectIdParams, response: { 200: SubjectSummarySchema } },
  }, async (request) => subjects.close(actorOf(request), request.params.id));

  app.post<{ Params: Params; Body: Static<typeof RestrictionSchema> }>('/v1/subjects/:id/restriction', {
    config: { permission: 'subjects:write' },
    preHandler: holderSignals,
    schema: { tags, summary: 'Restrict or lift the restriction of processing', params: SubjectIdParams, body: RestrictionSchema, response: { 200: SubjectSummarySchema } },
  }, async (request) => subjects.setRestricted(actorOf(request), request.params.id, request.body.restricted));

  app.delete<{ Params: Params }>('/v1/subjects/:id', {
    config: { permission: 'subjects:erase' },
    preHandler: holderSignals,
    schema: { tags, summary: 'Erase a subject', description: 'Destroys the data key (crypto-shredding): no copy of the data, backups included, can be read afterwards.', params: SubjectIdParams, response: { 200: SubjectSummarySchema } },
  }, async (request) => subjects.erase(actorOf(request), request.params.id));

  app.get<{ Params: Params; Querystring: Static<typeof PurposeQuery> }>('/v1/subjects/:id/data', {
    config: { permission: 'data:read' },
    preHandler: holderSignals,
    // Field values are free-form JSON: the schema-compiled serializer would hand each of them
    // to JSON.stringify anyway, after extra work; the schema stays for the documentation.
    serializerCompiler: () => (data) => purposeReadJson(data as PurposeRead),
    schema: {
      tags,
      summary: "Read a subject's data for a purpose",
      description:
        'Returns only the categories the purpose may use, while consent and restriction allow it; otherwise 403 purpose_not_permitted with the reason. With `recipient`, the data is read to pass it to that recipient: it must serve the purpose (otherwise reason `recipient_purpose`) and the person must not have opted out of sharing with it (reason `consent`), and only the categories both the purpose and the recipient may have come back. Roles that must justify reads send X-Pledge-Justification.',
      params: SubjectIdParams,
      querystring: PurposeQuery,
      headers: Type.Object({ 'x-pledge-justification': Type.Optional(Type.String({ maxLength: 200 })) }),
      response: { 200: PurposeReadSchema },
    },
  }, async (request, reply) => {
    const justification = request.headers['x-pledge-justification'];
    const result = await subjects.readData(actorOf(request), request.params.id, request.query.purpose, typeof justification === 'string' ? justification : undefined, request.query.recipient);
    return reply.header('cache-control', 'no-store').send(result);
  });

  app.patch<{ Params: Params; Body: Static<typeof DataWriteSchema> }>('/v1/subjects/:id/data', {
    config: { permission: 'data:write' },
    preHandler: holderSignals,
    schema: { tags, summary: "Write a subject's data for a purpose", description: 'Refused, with nothing stored, when the policy does not collect a category from that source or the purpose may not use it.', params: SubjectIdParams, body: DataWriteSchema, response: { 200: DataWrittenSchema } },
  }, async (request) => subjects.writeData(actorOf(request), request.params.id, request.body));
}
