import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import Type from 'typebox';
import { PledgeError } from '../core/errors.js';
import { Policy } from './policy.model.js';
import type { PolicyDocument } from './policy.schema.js';
import type { PolicyService } from './policy.service.js';
import { renderPolicy } from './render/render.js';

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

  // --- publication: every version ever published stays readable

  const VersionSchema = Type.Object({
    id: Type.String(),
    version: Type.String(),
    hash: Type.String(),
    effectiveDate: Type.String(),
    recordedAt: Type.String(),
    active: Type.Boolean({ description: 'The version in force: the latest whose effective date has come.' }),
  });

  app.get('/policy/versions', {
    config: { public: true },
    schema: { tags: ['policy'], summary: 'Every published version of the policy, newest first', response: { 200: Type.Object({ versions: Type.Array(VersionSchema) }) } },
  }, async () => {
    const [versions, active] = await Promise.all([service.listVersions(), service.activeVersionNow()]);
    return { versions: versions.map((version) => ({ ...version, active: version.id === active?.id })) };
  });

  app.get<{ Params: { id: string } }>('/policy/versions/:id', {
    config: { public: true },
    schema: {
      tags: ['policy'],
      summary: 'One published version: the page people read (Accept: text/html) or the document as data',
      params: Type.Object({ id: Type.String({ pattern: '^pol_[0-9a-hjkmnp-tv-z]{26}$' }) }, { additionalProperties: false }),
    },
  }, async (request, reply) => {
    const stored = await service.getVersion(request.params.id);
    if (!stored) throw new PledgeError('policy_version_not_found', 'no published policy version has this id');
    reply.header('cache-control', 'public, max-age=300');
    const document = JSON.parse(stored.document) as PolicyDocument;
    if ((request.headers.accept ?? '').includes('text/html')) return reply.type('text/html; charset=utf-8').send(renderPolicy(new Policy(document), 'html'));
    return reply.type('application/json; charset=utf-8').send(JSON.stringify({ id: stored.id, version: stored.version, effective_date: stored.effectiveDate, hash: stored.hash, recorded_at: stored.recordedAt, policy: document }));
  });
}
