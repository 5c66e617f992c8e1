import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import Type from 'typebox';
import type { PolicyService } from './policy.service.js';

/**
 * The published policy in every form: the page people read, Markdown for a docs site, JSON
 * for programs, the GPC well-known resource, and the policy language's JSON Schema.
 * All bodies are built once at start (PolicyService); handlers only send them.
 */
export function registerPolicyRoutes(app: FastifyInstance, service: PolicyService): void {
  const send = (request: FastifyRequest, reply: FastifyReply, type: string, body: string, extra: Record<string, string> = {}) => {
    reply.header('etag', service.etag).header('cache-control', 'public, max-age=300').headers(extra);
    if (request.headers['if-none-match'] === service.etag) return reply.status(304).send();
    return reply.type(type).send(body);
  };

  app.get('/policy', {
    config: { public: true },
    schema: { tags: ['policy'], summary: 'The privacy policy as a web page', produces: ['text/html'] },
  }, (request, reply) => send(request, reply, 'text/html; charset=utf-8', service.html));

  app.get('/policy.md', {
    config: { public: true },
    schema: { tags: ['policy'], summary: 'The privacy policy as Markdown', produces: ['text/markdown'] },
  }, (request, reply) => send(request, reply, 'text/markdown; charset=utf-8', service.markdown));

  app.get('/policy.json', {
    config: { public: true },
    schema: {
      tags: ['policy'],
      summary: 'The policy document as data',
      description: 'The validated policy (`pledge.yaml` as JSON) with its version, effective date and content hash.',
      response: {
        200: Type.Object({
          version: Type.String(),
          effective_date: Type.String(),
          hash: Type.String({ description: 'sha256 of the canonical JSON of the policy' }),
          policy: Type.Object({}, { additionalProperties: true }),
        }),
      },
    },
  }, (request, reply) => send(request, reply, 'application/json; charset=utf-8', service.json));

  app.get('/.well-known/gpc.json', {
    config: { public: true },
    schema: {
      tags: ['policy'],
      summary: 'Global Privacy Control support resource',
      description: 'Says whether this site honours the Sec-GPC signal, as the GPC specification defines.',
      response: { 200: Type.Object({ gpc: Type.Boolean(), lastUpdate: Type.String({ format: 'date' }) }) },
    },
  }, (request, reply) => send(request, reply, 'application/json', service.gpc, { 'access-control-allow-origin': '*' }));

  app.get('/policy/schema.json', {
    config: { public: true },
    schema: { tags: ['policy'], summary: 'JSON Schema of the policy language (pledge.yaml)' },
  }, (request, reply) => send(request, reply, 'application/schema+json', service.schema));
}
