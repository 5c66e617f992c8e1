import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Static } from 'typebox';
import { PledgeError } from '../core/errors.js';
import type { Actor } from '../staff/permissions.js';
import { AuditLog } from './audit.reads.js';
import { CheckpointsQuery, CheckpointsSchema, EntriesPageSchema, EntriesQuery, VerifyBodySchema, VerifyResultSchema } from './audit.schema.js';
import type { AuditService } from './audit.service.js';

function actorOf(request: FastifyRequest): Actor {
  const actor = (request as FastifyRequest & { actor?: Actor | null }).actor;
  if (!actor) throw new PledgeError('unauthenticated', 'sign in, or send an API key');
  return actor;
}

const tags = ['audit'];

/** Thin handlers: validate (schemas), authorise (config.permission), call AuditLog. */
export function registerAuditRoutes(app: FastifyInstance, audit: AuditService): void {
  const log = new AuditLog(audit);

  app.get<{ Querystring: Static<typeof EntriesQuery> }>('/v1/audit/entries', {
    config: { permission: 'audit:read' },
    schema: {
      tags,
      summary: 'Audit entries in chain order',
      description: 'A page of entries from fromSeq on, optionally only those about one record or of one action; follow nextSeq for the next page. The read is itself recorded (audit.read).',
      querystring: EntriesQuery,
      response: { 200: EntriesPageSchema },
    },
  }, async (request) => log.entries(actorOf(request), request.query));

  app.get<{ Querystring: Static<typeof CheckpointsQuery> }>('/v1/audit/checkpoints', {
    config: { permission: 'audit:read' },
    schema: {
      tags,
      summary: 'Signed checkpoints, and the key that signs them',
      description: 'Copy the latest somewhere the database administrators cannot write: a chain cut back together with its checkpoints is only detectable against such a copy.',
      querystring: CheckpointsQuery,
      response: { 200: CheckpointsSchema },
    },
  }, async (request) => log.checkpoints(actorOf(request), request.query));

  app.post<{ Body: Static<typeof VerifyBodySchema> }>('/v1/audit/verify', {
    config: { permission: 'audit:verify' },
    schema: {
      tags,
      summary: 'Verify the audit chain',
      description:
        'Checks hashes, links, checkpoint signatures and the head, for up to 10 seconds: a longer chain answers complete: false with nextSeq, to send as fromSeq next. A broken chain is a result (ok: false, firstProblem), not an error. Recorded as audit.verified.',
      body: VerifyBodySchema,
      response: { 200: VerifyResultSchema },
    },
  }, async (request) => log.verify(actorOf(request), request.body ?? {}));
}
