import type { FastifySchemaValidationError } from 'fastify';

/** One problem of a request that does not match its route's schema, as the `errors` member lists it. */
export interface ValidationIssue {
  /** Where: the part of the request (body, querystring, params, headers), then a JSON Pointer-like path. */
  location: string;
  message: string;
}

/** An enum longer than this is shown in part: an error message is not the place for a whole catalogue. */
const SHOWN_VALUES = 10;
/** Property names come from the client; a long one is cut so the message stays a message. */
const NAME_LIMIT = 64;

/**
 * The validator's issues in words a client can act on. Ajv's own messages leave out what the
 * client needs to fix the request — "must NOT have additional properties" does not say which
 * one, "must be equal to one of the allowed values" does not say which values — although ajv
 * knows both (params.additionalProperty, params.allowedValues).
 *
 * Only names chosen by the schema (the allowed values) or sent as property names appear;
 * the values the client sent never do, as they may be personal data.
 *
 *   { location: 'body/nickname', message: 'is not a property this route accepts' }
 *   { location: 'body/role', message: 'must be one of "owner", "admin", "privacy_officer"' }
 */
export function validationIssues(issues: readonly FastifySchemaValidationError[], part: string): ValidationIssue[] {
  return issues.map((issue) => {
    const at = `${part}${issue.instancePath || ''}`;
    const params = issue.params as Record<string, unknown>;
    switch (issue.keyword) {
      case 'additionalProperties':
        if (typeof params.additionalProperty === 'string') {
          return { location: `${at}/${pointerSegment(params.additionalProperty)}`, message: 'is not a property this route accepts' };
        }
        break;
      case 'enum':
        if (Array.isArray(params.allowedValues)) return { location: at, message: `must be one of ${listValues(params.allowedValues)}` };
        break;
      case 'const':
        return { location: at, message: `must be ${JSON.stringify(params.allowedValue)}` };
      default:
        break;
    }
    return { location: at, message: issue.message ?? 'is not valid' };
  });
}

function listValues(values: readonly unknown[]): string {
  const shown = values.slice(0, SHOWN_VALUES).map((value) => JSON.stringify(value)).join(', ');
  return values.length > SHOWN_VALUES ? `${shown} (and ${values.length - SHOWN_VALUES} more)` : shown;
}

/** A property name as one JSON Pointer segment (RFC 6901), as ajv writes instancePath, cut to NAME_LIMIT. */
function pointerSegment(name: string): string {
  const segment = name.replace(/~/g, '~0').replace(/\//g, '~1');
  return segment.length > NAME_LIMIT ? `${segment.slice(0, NAME_LIMIT)}…` : segment;
}
