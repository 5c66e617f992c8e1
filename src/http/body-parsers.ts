import type { FastifyInstance } from 'fastify';

/**
 * How request bodies are read. Every route of the API takes JSON (the unsubscribe routes add
 * their form parsers in their own scope); anything else is answered 415 unsupported_media_type.
 * Call it on the new app, before any route: a scope keeps the parsers it was created with.
 */
export function registerBodyParsers(app: FastifyInstance): void {
  // Fastify reads text/plain as a string by default. No route takes text, so such a body went on
  // to validation and was refused as "must be object", not as the content type it is.
  app.removeContentTypeParser('text/plain');
}
