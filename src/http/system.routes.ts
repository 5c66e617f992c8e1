import Type from 'typebox';
import type { FastifyInstance } from 'fastify';
import { ERROR_CATALOGUE, type ErrorCode } from '../core/errors.js';
import { ping, type Database } from '../core/db.js';
import type { PolicyService } from '../policy/policy.service.js';
import { escapeHtml } from '../core/html.js';

const HealthSchema = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('degraded')]),
  version: Type.String(),
  database: Type.Object({ dialect: Type.String(), reachable: Type.Boolean() }),
  policy: Type.Object({
    version: Type.String(),
    hash: Type.String(),
    effective_date: Type.String(),
    published: Type.Boolean({ description: 'Whether the policy this server enforces is a published version (pledge policy publish).' }),
    in_force: Type.Union([Type.String(), Type.Null()], { description: 'The published version in force today; when it is not this server\'s, restart the servers with its file.' }),
  }),
});

export function registerSystemRoutes(app: FastifyInstance, deps: { database: Database; policy: PolicyService; version: string }): void {
  app.get('/health', {
    config: { public: true },
    schema: {
      tags: ['system'],
      summary: 'Liveness and readiness',
      description: '200 when the database answers, 503 otherwise. Holds no personal data.',
      response: { 200: HealthSchema, 503: HealthSchema },
    },
    logLevel: 'warn',
  }, async (_request, reply) => {
    const reachable = await ping(deps.database);
    const { policy } = deps.policy;
    const inForce = reachable ? await deps.policy.activeVersionNow().catch(() => undefined) : undefined;
    reply.header('cache-control', 'no-store');
    return reply.status(reachable ? 200 : 503).send({
      status: reachable ? 'ok' : 'degraded',
      version: deps.version,
      database: { dialect: deps.database.dialect, reachable },
      policy: { version: policy.version, hash: policy.hash, effective_date: policy.effectiveDate, published: deps.policy.publishedVersion !== undefined, in_force: inForce?.version ?? null },
    });
  });

  // Browsers ask for it on every page; an empty answer keeps their consoles (and logs) clean.
  app.get('/favicon.ico', {
    config: { public: true }, schema: { hide: true }, logLevel: 'warn' }, async (_request, reply) => reply.header('cache-control', 'public, max-age=86400').status(204).send());

  app.get('/openapi.json', {
    config: { public: true }, schema: { hide: true } }, async (_request, reply) => reply.type('application/json').send(app.swagger()));

  app.get('/problems', {
    config: { public: true }, schema: { hide: true } }, async (_request, reply) => {
    const items = Object.entries(ERROR_CATALOGUE)
      .map(([code, spec]) => `<li><a href="/problems/${code}"><code>${code}</code></a> (${spec.status}) — ${escapeHtml(spec.title)}</li>`)
      .join('\n');
    return reply.type('text/html; charset=utf-8').send(page('Problem types', `<p>Every error of the Pledge API is a problem+json document with one of these codes.</p><ul>${items}</ul>`));
  });

  app.get<{ Params: { code: string } }>('/problems/:code', {
    config: { public: true },
    schema: { hide: true, params: Type.Object({ code: Type.String({ pattern: '^[a-z_]{1,64}$' }) }) },
  }, async (request, reply) => {
    const spec = ERROR_CATALOGUE[request.params.code as ErrorCode];
    if (!spec || !Object.hasOwn(ERROR_CATALOGUE, request.params.code)) return reply.callNotFound();
    const body = `<p><strong>HTTP ${spec.status}</strong> · code <code>${request.params.code}</code></p><p>${escapeHtml(spec.description)}</p><p><a href="/problems">All problem types</a></p>`;
    return reply.type('text/html; charset=utf-8').send(page(spec.title, body));
  });

  app.get('/', {
    config: { public: true }, schema: { hide: true } }, async (_request, reply) => {
    const { policy } = deps.policy;
    const body = `<p>Pledge is keeping the privacy policy of ${escapeHtml(policy.document.organization.name)}.</p>
<ul>
<li><a href="/policy">Privacy policy</a> (also as <a href="/policy.md">Markdown</a> and <a href="/policy.json">JSON</a>)</li>
<li><a href="/docs">API documentation</a> (<a href="/openapi.json">OpenAPI</a>)</li>
<li><a href="/.well-known/gpc.json">Global Privacy Control support</a></li>
<li><a href="/health">Health</a></li>
</ul>`;
    return reply.type('text/html; charset=utf-8').send(page('Pledge', body));
  });
}

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(title)}</title><style>body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}code{background:#f2f2f2;padding:0 .2em}</style></head><body><main><h1>${escapeHtml(title)}</h1>${body}</main></body></html>`;
}
