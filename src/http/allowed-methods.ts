import type { FastifyInstance } from 'fastify';

/**
 * The methods each registered path answers, so that a request for a path that exists, with a
 * method it does not take, is told so (405 with `Allow`, RFC 9110 §15.5.6) instead of being
 * told the path does not exist. Fed by an onRoute hook: register it before the routes. Only
 * the not-found handler asks, so the cost is paid by wrong requests alone.
 */
export function trackAllowedMethods(app: FastifyInstance): (path: string) => string[] {
  const routes: Array<{ pattern: RegExp; methods: readonly string[] }> = [];
  app.addHook('onRoute', (route) => {
    routes.push({ pattern: pathPattern(route.url), methods: Array.isArray(route.method) ? route.method : [route.method] });
  });
  return (path) => {
    const allowed = new Set<string>();
    for (const route of routes) if (route.pattern.test(path)) for (const method of route.methods) allowed.add(method);
    return [...allowed].sort();
  };
}

/** A route URL as a regular expression: a `:parameter` (with or without its own pattern) is one segment, `*` the rest; a trailing slash is optional, as the router treats it. */
function pathPattern(url: string): RegExp {
  const segments = url
    .replace(/\/+$/, '')
    .split('/')
    .map((segment) => (segment.startsWith(':') ? '[^/]+' : segment === '*' ? '.*' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  return new RegExp(`^${segments.join('/')}/?$`);
}
