import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ERROR_CATALOGUE, PledgeError, isPledgeError, type ErrorCode } from '../core/errors.js';
import { trackAllowedMethods } from './allowed-methods.js';
import { setPageSecurityHeaders } from './security-headers.js';
import { validationIssues } from './validation-errors.js';

/**
 * The one place where error codes become HTTP: RFC 9457 problem+json bodies.
 *
 *   { "type": "/problems/not_found", "title": "Not found", "status": 404,
 *     "detail": "No route GET /nope", "code": "not_found", "requestId": "req-1" }
 *
 * `type` is a relative URI that resolves to this server's own description of the problem.
 * Messages are written to be safe to show: they never carry personal data.
 */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

export function problemBody(code: ErrorCode, detail: string, requestId: string, details?: Record<string, unknown>) {
  const spec = ERROR_CATALOGUE[code];
  return { type: `/problems/${code}`, title: spec.title, status: spec.status, detail, code, requestId, ...details };
}

function sendProblem(reply: FastifyReply, request: FastifyRequest, error: PledgeError): FastifyReply {
  return reply
    .status(error.status)
    .type(PROBLEM_CONTENT_TYPE)
    .send(problemBody(error.code, error.message, request.id, error.details));
}

/** Fastify's own errors (body parsing, limits, validation) mapped onto the catalogue. */
function fromFastifyError(error: FastifyError, request: FastifyRequest): PledgeError | undefined {
  if (error.validation) {
    // No body at all (none sent, or an empty one): ajv would say "must be object".
    if (error.validationContext === 'body' && request.body === undefined) {
      return new PledgeError('validation_failed', 'this route needs a JSON body and none was sent', { details: { errors: [{ location: 'body', message: 'is missing' }] } });
    }
    const errors = validationIssues(error.validation, error.validationContext ?? 'body');
    return new PledgeError('validation_failed', `the ${error.validationContext ?? 'request'} is not valid`, { details: { errors } });
  }
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new PledgeError('payload_too_large', 'the request body is larger than this route accepts');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new PledgeError('unsupported_media_type', 'this route does not accept that content type');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new PledgeError('malformed_body', 'the request body is not valid JSON');
    default:
      break;
  }
  if (error instanceof SyntaxError || error.statusCode === 400) {
    return new PledgeError('malformed_body', 'the request could not be parsed');
  }
  if (error.statusCode === 429) return new PledgeError('rate_limited', 'too many requests; slow down');
  return undefined;
}

/** Problem answers for errors and unknown routes; call it before any route is registered (it learns the routes' methods). */
export function registerProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const known = isPledgeError(error) ? error : fromFastifyError(error, request);
    if (known) {
      if (known.status >= 500) request.log.error({ code: known.code, err: error }, 'request failed');
      return sendProblem(reply, request, known);
    }
    // Unknown errors are logged in full for operators; the client learns only the request id.
    request.log.error({ err: error }, 'unhandled error');
    return sendProblem(reply, request, new PledgeError('internal', 'an internal error occurred; quote the request id when reporting it'));
  });

  const allowedMethods = trackAllowedMethods(app);
  app.setNotFoundHandler((request, reply) => {
    setPageSecurityHeaders(reply);
    // The path is not echoed: a client may have put personal data in it.
    const allowed = allowedMethods(request.url.split('?', 1)[0]!);
    if (allowed.length > 0 && !allowed.includes(request.method)) {
      reply.header('allow', allowed.join(', '));
      return sendProblem(reply, request, new PledgeError('method_not_allowed', `this address does not take ${request.method}; it takes ${allowed.join(', ')}`));
    }
    return sendProblem(reply, request, new PledgeError('not_found', `no route matches this ${request.method} request`));
  });
}
