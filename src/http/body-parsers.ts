import type { FastifyInstance } from 'fastify';
import { PledgeError } from '../core/errors.js';

/**
 * How request bodies are read. Every route of the API takes JSON (the unsubscribe routes add
 * their form parsers in their own scope); anything else is answered 415 unsupported_media_type.
 * Call it on the new app, before any route: a scope keeps the parsers it was created with.
 */
export function registerBodyParsers(app: FastifyInstance): void {
  // Fastify reads text/plain as a string by default. No route takes text, so such a body went on
  // to validation and was refused as "must be object", not as the content type it is.
  app.removeContentTypeParser('text/plain');

  // The default parser refuses keys that could change objects' prototypes (prototype
  // pollution); only the message it gives is replaced, by one that says so.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    // Clients send the JSON content type on every request, bodies or not: an empty body is no
    // body. A route that needs one then gets a validation error saying it is missing.
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    parseJson(request, text, (error, value) => {
      if (error && isWellFormedJson(text)) {
        done(
          new PledgeError('malformed_body', 'the body holds a key named "__proto__", or a "constructor" key holding "prototype", which is never accepted: such keys could change the prototype of objects'),
          undefined,
        );
        return;
      }
      done(error, value);
    });
  });
}

/** Whether the text is JSON at all: the default parser refuses well-formed JSON only for its forbidden keys. Run only when it refused. */
function isWellFormedJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
