import type { FastifyInstance } from 'fastify';

/**
 * The methods each registered path answers, so that a request for a path that exists, with a
 * method it does not take, is told so (405 with `Allow`, RFC 9110 §15.5.6) instead of being
 * told the path does not exist. Fed by an onRoute hook: register it before the routes. Only
 * the not-found handler asks, so the cost is paid by wrong requests alone.
 *
 * A path can match several route patterns: /v1/subjects/lookup matches both itself and
 * /v1/subjects/:id. It is the resource the router would take it for — the most specific
 * pattern, where at each segment a static name wins over a parameter and a parameter over a
 * wildcard — and `Allow` lists that resource's methods only (POST), not those of /:id.
 */
export function trackAllowedMethods(app: FastifyInstance): (path: string) => string[] {
  const resources = new Map<string, Resource>();
  app.addHook('onRoute', (route) => {
    const shape = routeShape(route.url);
    let resource = resources.get(shape.key);
    if (!resource) resources.set(shape.key, (resource = { ...shape, methods: new Set() }));
    for (const method of Array.isArray(route.method) ? route.method : [route.method]) resource.methods.add(method);
  });
  return (path) => {
    let best: Resource | undefined;
    for (const resource of resources.values()) {
      if (resource.pattern.test(path) && (!best || moreSpecific(resource.kinds, best.kinds))) best = resource;
    }
    return best ? [...best.methods].sort() : [];
  };
}

/** What a segment of a route URL is, in the router's order of preference. */
const enum Kind {
  Static = 0,
  Parameter = 1,
  Wildcard = 2,
}

interface Shape {
  /** The URL with parameter names left out: /v1/subjects/:id and /v1/subjects/:subjectId are one resource. */
  key: string;
  kinds: Kind[];
  pattern: RegExp;
}

interface Resource extends Shape {
  methods: Set<string>;
}

/**
 * A route URL as a regular expression: a `:parameter` (with or without its own pattern) is one
 * segment, `*` the rest; a trailing slash is optional, as the router treats it.
 */
function routeShape(url: string): Shape {
  const segments = url.replace(/\/+$/, '').split('/');
  const kinds = segments.map((segment) => (segment.startsWith(':') ? Kind.Parameter : segment === '*' ? Kind.Wildcard : Kind.Static));
  const sources = segments.map((segment, index) =>
    kinds[index] === Kind.Parameter ? '[^/]+' : kinds[index] === Kind.Wildcard ? '.*' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
  );
  const key = segments.map((segment, index) => (kinds[index] === Kind.Parameter ? `:${/\(.*\)$/.exec(segment)?.[0] ?? ''}` : segment)).join('/');
  return { key, kinds, pattern: new RegExp(`^${sources.join('/')}/?$`) };
}

/** Whether `a` is preferred to `b` by the router: at the first segment where they differ, the lower kind wins. */
function moreSpecific(a: readonly Kind[], b: readonly Kind[]): boolean {
  for (let index = 0; index < Math.min(a.length, b.length); index++) {
    if (a[index] !== b[index]) return a[index]! < b[index]!;
  }
  return a.length > b.length;
}
