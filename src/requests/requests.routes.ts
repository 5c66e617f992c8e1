import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Static } from 'typebox';
import { PledgeError } from '../core/errors.js';
import type { Actor } from '../staff/permissions.js';
import {
  CreateRequestSchema,
  DryRunSchema,
  ExtendSchema,
  LinksSchema,
  ListRequestsQuery,
  PackageTokenParams,
  ReasonSchema,
  RequestIdParams,
  RequestListSchema,
  RequestViewSchema,
  VerifySchema,
} from './requests.schema.js';
import type { RequestsService } from './requests.service.js';

function actorOf(request: FastifyRequest): Actor {
  const actor = (request as FastifyRequest & { actor?: Actor | null }).actor;
  if (!actor) throw new PledgeError('unauthenticated', 'sign in, or send an API key');
  return actor;
}

type Params = Static<typeof RequestIdParams>;
const tags = ['requests'];
const view = { 200: RequestViewSchema };

/** Thin handlers: validate (schemas), authorise (config.permission), call the service. */
export function registerRequestRoutes(app: FastifyInstance, requests: RequestsService): void {
  app.post<{ Body: Static<typeof CreateRequestSchema> }>('/v1/requests', {
    config: { permission: 'requests:manage' },
    schema: {
      tags,
      summary: 'Log a data-subject request',
      description: 'From the API, or by staff for a request that came by mail, phone or email (with its channel and received date). A verification code goes to the email identity. The answer is the same whether or not the identities match anyone.',
      body: CreateRequestSchema,
      response: { 201: RequestViewSchema },
    },
  }, async (request, reply) => reply.status(201).send(await requests.create(actorOf(request), request.body)));

  app.get<{ Querystring: Static<typeof ListRequestsQuery> }>('/v1/requests', {
    config: { permission: 'requests:read' },
    schema: { tags, summary: 'List requests, newest first', description: 'Filter by status, type, or overdue=true for open requests past their deadline.', querystring: ListRequestsQuery, response: { 200: RequestListSchema } },
  }, async (request) => requests.list(request.query));

  app.get<{ Params: Params }>('/v1/requests/:id', {
    config: { permission: 'requests:read' },
    schema: { tags, summary: 'A request with its deadline, tasks and packages', params: RequestIdParams, response: view },
  }, async (request) => requests.get(request.params.id));

  app.post<{ Params: Params; Body: Static<typeof VerifySchema> }>('/v1/requests/:id/verify', {
    config: { permission: 'requests:manage' },
    schema: { tags, summary: 'Check the code the person received', description: 'Limited attempts; the code expires after 15 minutes.', params: RequestIdParams, body: VerifySchema, response: view },
  }, async (request) => requests.verify(actorOf(request), request.params.id, request.body.code));

  app.post<{ Params: Params }>('/v1/requests/:id/resend', {
    config: { permission: 'requests:manage' },
    schema: { tags, summary: 'Send a new verification code', params: RequestIdParams, response: view },
  }, async (request) => requests.resend(actorOf(request), request.params.id));

  app.post<{ Params: Params; Body: Static<typeof ReasonSchema> }>('/v1/requests/:id/verification-override', {
    config: { permission: 'requests:decide' },
    schema: { tags, summary: 'Verify the person by other means, with a reason', params: RequestIdParams, body: ReasonSchema, response: view },
  }, async (request) => requests.overrideVerification(actorOf(request), request.params.id, request.body.reason));

  app.post<{ Params: Params }>('/v1/requests/:id/approve', {
    config: { permission: 'requests:decide' },
    schema: { tags, summary: 'Approve a verified request', params: RequestIdParams, response: view },
  }, async (request) => requests.approve(actorOf(request), request.params.id));

  app.post<{ Params: Params; Body: Static<typeof ReasonSchema> }>('/v1/requests/:id/deny', {
    config: { permission: 'requests:decide' },
    schema: { tags, summary: 'Deny a request, with the reason the person is given', params: RequestIdParams, body: ReasonSchema, response: view },
  }, async (request) => requests.deny(actorOf(request), request.params.id, request.body.reason));

  app.post<{ Params: Params; Body: Static<typeof ReasonSchema> }>('/v1/requests/:id/cancel', {
    config: { permission: 'requests:decide' },
    schema: { tags, summary: 'Cancel a request', params: RequestIdParams, body: ReasonSchema, response: view },
  }, async (request) => requests.cancel(actorOf(request), request.params.id, request.body.reason));

  app.post<{ Params: Params }>('/v1/requests/:id/run', {
    config: { permission: 'requests:decide' },
    schema: { tags, summary: 'Carry out an approved request (or resume a failed one)', description: 'One durable task per datastore, retried with backoff; tasks already done are not repeated.', params: RequestIdParams, response: { 202: RequestViewSchema } },
  }, async (request, reply) => reply.status(202).send(await requests.run(actorOf(request), request.params.id)));

  app.post<{ Params: Params; Body: Static<typeof ExtendSchema> }>('/v1/requests/:id/extend', {
    config: { permission: 'requests:manage' },
    schema: { tags, summary: 'Take the extension the policy allows, once', params: RequestIdParams, body: ExtendSchema, response: view },
  }, async (request) => requests.extend(actorOf(request), request.params.id, request.body.reason));

  app.post<{ Params: Params }>('/v1/requests/:id/dry-run', {
    config: { permission: 'requests:decide' },
    schema: { tags, summary: 'Show what an erasure would change and keep, changing nothing', params: RequestIdParams, response: { 200: DryRunSchema } },
  }, async (request) => requests.dryRun(actorOf(request), request.params.id));

  app.post<{ Params: Params }>('/v1/requests/:id/package-links', {
    config: { permission: 'requests:decide' },
    schema: { tags, summary: 'Signed, expiring download links of the package', params: RequestIdParams, response: { 200: LinksSchema } },
  }, async (request) => ({ links: await requests.links(request.params.id, actorOf(request)) }));

  app.get<{ Params: Static<typeof PackageTokenParams> }>('/v1/packages/:token', {
    // Public, but only a link signed by this server, unexpired and for a package not yet deleted opens.
    config: { public: true },
    schema: { tags, summary: 'Download a package through its signed link', params: PackageTokenParams },
  }, async (request, reply) => {
    const download = await requests.download(request.params.token);
    return reply
      .header('content-type', download.contentType)
      .header('content-disposition', `attachment; filename="${download.filename}"`)
      .header('cache-control', 'no-store')
      .header('x-content-type-options', 'nosniff')
      .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'")
      .send(download.body);
  });
}
