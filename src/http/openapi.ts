import type { FastifySchema, RouteOptions } from 'fastify';
import { routeAccess, type RouteAccess } from './auth.js';

/**
 * The OpenAPI document's error answers and security requirements, added to every operation in
 * one place rather than in each route's schema: the route's shape (its method, parameters,
 * body) and its access rule (config.public, .authenticated, .permission — the rule the auth
 * layer enforces) decide which problems it can answer with, and whether it needs credentials.
 *
 * Route schemas are left alone: their `response` entries also drive serialization, and a
 * problem body is written by the error handler, not by the route.
 *
 * Used as @fastify/swagger's `transform` (per route) and `transformObject` (the whole document):
 *
 *   await app.register(swagger, { openapi: {…}, transform: documentRoute, transformObject: documentErrors });
 */

export const PROBLEM_MEDIA_TYPE = 'application/problem+json';
export const PROBLEM_REF = '#/components/schemas/Problem';

/** RFC 9457 problem details, as problem.ts writes them; members beyond these depend on the code. */
export const PROBLEM_SCHEMA = {
  type: 'object',
  description: 'An RFC 9457 problem. `code` is stable; `/problems/{code}` describes each. Some codes add members (`errors`, `permission`, `reason`…).',
  required: ['type', 'title', 'status', 'detail', 'code', 'requestId'],
  properties: {
    type: { type: 'string', description: 'A relative URI describing the problem: `/problems/{code}`.' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string', description: 'What went wrong here. Never holds personal data.' },
    code: { type: 'string', description: 'The stable error code (docs/errors.md).' },
    requestId: { type: 'string', description: 'Quote it when reporting a problem.' },
    errors: {
      type: 'array',
      description: 'For `validation_failed` and `batch_rejected`: each problem with its location.',
      items: { type: 'object', properties: { location: { type: 'string' }, message: { type: 'string' } } },
    },
  },
  additionalProperties: true,
} as const;

const ERROR_DESCRIPTIONS: Readonly<Record<number, string>> = {
  400: 'The request is not valid: `validation_failed` (`errors` lists each problem), `malformed_body`, or another code of the operation.',
  401: 'No valid credentials: `unauthenticated`, `session_expired`, `api_key_revoked`, `api_key_expired` (or `invalid_credentials` when signing in).',
  403: 'Not allowed: `forbidden` (`permission` names what is missing), `csrf_failed` for a session without its X-CSRF-Token, or a refusal of the operation itself.',
  404: 'Nothing exists at this address: `not_found`, or the resource\'s own code (e.g. `subject_not_found`).',
  413: '`payload_too_large`: the body exceeds the size limit of the route.',
  415: '`unsupported_media_type`: the body is not of a content type the route accepts (JSON).',
  422: 'Understood but refused by the policy or the state of the data: the `code` says why (e.g. `unknown_purpose`).',
  429: 'Too many attempts (`rate_limited` and the like); `Retry-After` says when to try again.',
  500: '`internal` (or another server-side code): something failed inside Pledge; quote the `requestId` when reporting it.',
};

/** Methods whose body Fastify reads, so a body can be too large or of the wrong type. */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/**
 * What the shape of a route does not tell: sign-in is public yet answers 401 for wrong
 * credentials, and it and the verification codes count attempts (429 past a limit).
 */
const OWN_STATUSES: Readonly<Record<string, readonly number[]>> = {
  'POST /v1/auth/login': [401, 429],
  'POST /v1/requests/:id/verify': [429],
  'POST /v1/requests/:id/resend': [429],
};

/** The error statuses an operation can answer with, from what the route declares. */
export function errorStatuses(method: string, url: string, schema: FastifySchema | undefined, access: RouteAccess | undefined): number[] {
  const open = access?.kind === 'public' || access?.kind === 'documentation';
  const takesBody = BODY_METHODS.has(method);
  const statuses = new Set<number>(OWN_STATUSES[`${method} ${url}`]);
  if (takesBody || schema?.body || schema?.querystring || schema?.params || schema?.headers) statuses.add(400);
  if (!open) statuses.add(401);
  // Signed-in callers: a permission can be lacking; a session changing something needs its CSRF token.
  if (!open && (access?.kind !== 'authenticated' || takesBody)) statuses.add(403);
  if (url.includes(':')) statuses.add(404);
  if (takesBody) {
    statuses.add(413);
    statuses.add(415);
  }
  if (!open && access?.kind !== 'authenticated' && (schema?.body || schema?.querystring || takesBody)) statuses.add(422);
  // Any operation can fail inside; the answer is a problem too.
  statuses.add(500);
  return [...statuses].sort((a, b) => a - b);
}

const ERRORS_KEY = 'x-pledge-errors';

interface TransformInput {
  schema: FastifySchema;
  url: string;
  route: RouteOptions;
}

/**
 * Per route: public routes need no credentials (`security: []` overrides the document's
 * API-key-or-session requirement), and the statuses it can answer with are noted for
 * documentErrors, which writes them (an `x-` member is how a route's note reaches the operation).
 */
export function documentRoute({ schema, url, route }: TransformInput): { schema: FastifySchema; url: string } {
  const access = routeAccess(route.url, route.config);
  // A route with several methods is one operation per method, all sharing this schema.
  const methods = Array.isArray(route.method) ? route.method : [route.method];
  const statuses = [...new Set(methods.flatMap((method) => errorStatuses(method, route.url, schema, access)))].sort((a, b) => a - b);
  const open = access?.kind === 'public' || access?.kind === 'documentation';
  return { url, schema: { ...schema, ...(open ? { security: [] } : {}), [ERRORS_KEY]: statuses } as FastifySchema };
}

type Operation = { responses?: Record<string, unknown>; [ERRORS_KEY]?: number[] };

/** The whole document: one shared Problem schema, and each operation's error answers referring to it. */
export function documentErrors({ openapiObject }: { openapiObject: Record<string, unknown> }): Record<string, unknown> {
  const document = openapiObject as { components?: { schemas?: Record<string, unknown> }; paths?: Record<string, Record<string, Operation>> };
  document.components ??= {};
  document.components.schemas = { ...document.components.schemas, Problem: PROBLEM_SCHEMA };
  for (const pathItem of Object.values(document.paths ?? {})) {
    for (const operation of Object.values(pathItem)) {
      const statuses = operation[ERRORS_KEY];
      if (!statuses) continue;
      delete operation[ERRORS_KEY];
      const responses = (operation.responses ??= {});
      for (const status of statuses) responses[String(status)] ??= problemResponse(status);
    }
  }
  return openapiObject;
}

function problemResponse(status: number) {
  return {
    description: ERROR_DESCRIPTIONS[status] ?? 'A problem; its `code` says which.',
    ...(status === 429 ? { headers: { 'Retry-After': { description: 'Seconds to wait before trying again.', schema: { type: 'integer' } } } } : {}),
    content: { [PROBLEM_MEDIA_TYPE]: { schema: { $ref: PROBLEM_REF } } },
  };
}
