import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Static } from 'typebox';
import { PledgeError } from '../core/errors.js';
import type { Actor } from '../staff/permissions.js';
import { HoldIdParams, HoldListSchema, HoldQuery, HoldSchema, PlaceHoldSchema, ReportSchema, RunSweepSchema } from './retention.schema.js';
import type { RetentionService } from './retention.service.js';

function actorOf(request: FastifyRequest): Actor {
  const actor = (request as FastifyRequest & { actor?: Actor | null }).actor;
  if (!actor) throw new PledgeError('unauthenticated', 'sign in, or send an API key');
  return actor;
}

const tags = ['retention'];

/** Thin handlers: validate (schemas), authorise (config.permission), call the service. */
export function registerRetentionRoutes(app: FastifyInstance, retention: RetentionService): void {
  app.get('/v1/retention/preview', {
    config: { permission: 'retention:read' },
    schema: { tags, summary: 'What a retention sweep would remove now', description: 'A dry run: counts per rule, target and category; nothing changes.', response: { 200: ReportSchema } },
  }, async (request) => retention.preview(actorOf(request)));

  app.post<{ Body: Static<typeof RunSweepSchema> }>('/v1/retention/run', {
    config: { permission: 'retention:manage' },
    schema: {
      tags,
      summary: 'Run a retention sweep now',
      description: 'Removes what the policy no longer allows to keep, audited batch by batch, and answers with the summary. 409 retention_sweep_running when another sweep holds the lease.',
      body: RunSweepSchema,
      response: { 200: ReportSchema },
    },
  }, async (request) => retention.run(actorOf(request), { dryRun: request.body.dryRun ?? false }));

  app.get<{ Querystring: Static<typeof HoldQuery> }>('/v1/retention/holds', {
    config: { permission: 'retention:read' },
    schema: { tags, summary: 'Legal holds (in force, or all)', querystring: HoldQuery, response: { 200: HoldListSchema } },
  }, async (request) => ({ holds: await retention.listHolds({ subjectId: request.query.subjectId, all: request.query.all }) }));

  app.post<{ Body: Static<typeof PlaceHoldSchema> }>('/v1/retention/holds', {
    config: { permission: 'retention:manage' },
    schema: { tags, summary: 'Place a legal hold on a subject', description: 'While in force, sweeps and erasure leave the subject\'s data untouched.', body: PlaceHoldSchema, response: { 201: HoldSchema } },
  }, async (request, reply) => reply.status(201).send(await retention.placeHold(actorOf(request), request.body.subjectId, request.body)));

  app.get<{ Params: Static<typeof HoldIdParams> }>('/v1/retention/holds/:id', {
    config: { permission: 'retention:read' },
    schema: { tags, summary: 'One legal hold', params: HoldIdParams, response: { 200: HoldSchema } },
  }, async (request) => retention.getHold(request.params.id));

  app.post<{ Params: Static<typeof HoldIdParams> }>('/v1/retention/holds/:id/release', {
    config: { permission: 'retention:manage' },
    schema: { tags, summary: 'Release a legal hold', description: 'The hold record stays, marked released; releasing twice is harmless.', params: HoldIdParams, response: { 200: HoldSchema } },
  }, async (request) => retention.releaseHold(actorOf(request), request.params.id));
}
