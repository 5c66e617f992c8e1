import type { FastifyInstance, FastifyReply, onRequestHookHandler } from 'fastify';
import { addOnRequestHook } from './route-hooks.js';
import helmet from 'helmet';

/**
 * Security headers on every response, as helmet defines them (CSP, nosniff, frame denial,
 * referrer policy, cross-origin isolation…). They are the same for every request, so helmet
 * runs once at start against a recording response and the result is replayed: computing the
 * Content-Security-Policy per request cost a tenth of the CPU of a data read.
 */
export function computeSecurityHeaders(options: Parameters<typeof helmet>[0]): ReadonlyArray<[string, string]> {
  const headers = new Map<string, string>();
  const recorder = {
    setHeader: (name: string, value: string | number | readonly string[]) => headers.set(name.toLowerCase(), Array.isArray(value) ? value.join(', ') : String(value)),
    removeHeader: (name: string) => headers.delete(name.toLowerCase()),
  };
  let failure: unknown;
  helmet(options)({} as never, recorder as never, (error?: unknown) => {
    failure = error;
  });
  if (failure) throw failure;
  return [...headers.entries()];
}

/**
 * What a JSON API answer needs (OWASP's REST guidance): never sniffed into something
 * renderable, never framed, never loaded by another site. The page-oriented rest of helmet's
 * set (referrer policy, cross-origin isolation…) does nothing for a JSON document, and each
 * header is work on every call.
 */
export const API_SECURITY_HEADERS: ReadonlyArray<[string, string]> = [
  ['x-content-type-options', 'nosniff'],
  ['content-security-policy', "default-src 'none'; frame-ancestors 'none'"],
  ['cross-origin-resource-policy', 'same-site'],
];

/**
 * The routes that answer JSON to programs get the API set: those of the /v1 API that need a
 * caller's credentials and produce no page. Pages, and the public routes people open from a
 * mail or a link (an unsubscribe page, a package download), get the full set.
 */
export function isApiRoute(url: string, config: { public?: boolean } | undefined, schema: { produces?: readonly string[] } | undefined): boolean {
  return url.startsWith('/v1/') && config?.public !== true && !(schema?.produces ?? []).some((type) => type.includes('html'));
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The full set, for answers no route produced (the not-found handler's). */
    pageSecurityHeaders: ReadonlyArray<[string, string]>;
  }
}

/** Sets the full page set on an answer no route produced: it ran no route hook. */
export function setPageSecurityHeaders(reply: FastifyReply): void {
  for (const [name, value] of reply.server.pageSecurityHeaders) reply.header(name, value);
}

/**
 * Each route gets its set when it is registered, as a hook of its own: a hook on every request
 * that looked up the route's choice (request.routeOptions builds a new object on each call)
 * was a tenth of the work of a constant answer.
 */
export function registerSecurityHeaders(app: FastifyInstance, options: Parameters<typeof helmet>[0]): void {
  const pageHeaders = computeSecurityHeaders(options);
  app.decorate('pageSecurityHeaders', pageHeaders);
  app.addHook('onRoute', (route) => {
    const api = isApiRoute(route.url, route.config, route.schema as { produces?: readonly string[] } | undefined);
    addOnRequestHook(route, securityHeadersHook(api ? API_SECURITY_HEADERS : pageHeaders));
  });
}

function securityHeadersHook(headers: ReadonlyArray<[string, string]>): onRequestHookHandler {
  // Names and values apart, walked by index: no iterator and no pair taken apart per request.
  const names = headers.map(([name]) => name);
  const values = headers.map(([, value]) => value);
  return function setSecurityHeaders(_request, reply, done) {
    for (let index = 0; index < names.length; index++) reply.header(names[index]!, values[index]!);
    done();
  };
}
