import cookie from '@fastify/cookie';
import type { FastifyContextConfig, FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler, RouteOptions } from 'fastify';
import type { AuditWriter } from '../audit/audit.types.js';
import { sameTextInConstantTime } from '../core/crypto.js';
import { PledgeError, isPledgeError } from '../core/errors.js';
import { actorAllows, PERMISSIONS, type Actor, type Permission } from '../staff/permissions.js';
import { addOnRequestHook } from './route-hooks.js';
import type { KnownApiKey, SessionInfo, StaffService } from '../staff/staff.service.js';

/**
 * Authentication and authorisation for every HTTP route.
 *
 * Each route states who may call it, in its config — and a route that states nothing is
 * refused when it is registered, so nothing is left open by mistake:
 *
 *   app.get('/v1/subjects/:id', { config: { permission: 'subjects:read' } }, handler);
 *   app.get('/v1/auth/me', { config: { authenticated: true } }, handler);   // anyone signed in
 *   app.get('/policy', { config: { public: true } }, handler);
 *
 * A request proves who it comes from with an API key (`Authorization: Bearer pk_…`, for
 * company services) or the console's session cookie (`pledge_session`). Requests that change
 * something with the cookie must also send `X-CSRF-Token`: a browser attaches cookies to
 * requests another site makes it send, but that site cannot read the token.
 *
 * Call `registerAuth` right after `createHttpApp` and before any route: each route gets its
 * check as a hook of its own when it is registered, and an app created by createHttpApp with a
 * route registered earlier refuses to start (it would run unchecked).
 */

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling; null on public routes. */
    actor: Actor | null;
    /** The console session, when the request was authenticated by the session cookie. */
    session: SessionInfo | null;
  }
  interface FastifyContextConfig {
    /** The permission a caller needs. */
    permission?: Permission;
    /** Any authenticated caller (signing out, "who am I"). */
    authenticated?: boolean;
    /** No authentication at all. */
    public?: boolean;
  }
}

export const SESSION_COOKIE = 'pledge_session';
export const CSRF_HEADER = 'x-csrf-token';

/**
 * Paths served by plugins that declare no access rule of their own: the API documentation
 * (@fastify/swagger-ui's page, assets and JSON). The one place such exceptions are listed.
 */
export const PUBLIC_PREFIXES: readonly string[] = ['/docs'];

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export type RouteAccess =
  | { kind: 'public' }
  | { kind: 'documentation' }
  | { kind: 'authenticated' }
  | { kind: 'permission'; permission: Permission };

export interface RegisteredRoute {
  method: string;
  url: string;
  access: RouteAccess;
}

const registries = new WeakMap<FastifyInstance, RegisteredRoute[]>();

/** Every route registered after `registerAuth`, with its access rule (the route-table test walks it). */
export function registeredRoutes(app: FastifyInstance): readonly RegisteredRoute[] {
  const registry = registries.get(app);
  if (!registry) throw new Error('registerAuth has not been called on this app');
  return registry;
}

export interface AuthOptions {
  staff: StaffService;
  /** The server's public address: decides whether the session cookie is marked Secure. */
  publicUrl: string;
  /** When given, refusals of authenticated callers (403) are written to the audit chain. */
  audit?: AuditWriter;
}

/**
 * The session cookie is Secure unless the server is reached over plain http on the local
 * machine (development): browsers never send a Secure cookie over http, so a non-local http
 * address cannot keep anyone signed in — put Pledge behind TLS instead.
 */
export function cookieIsSecure(publicUrl: string): boolean {
  const url = new URL(publicUrl);
  if (url.protocol !== 'http:') return true;
  const host = url.hostname;
  return !(host === 'localhost' || host.endsWith('.localhost') || /^127(\.\d{1,3}){3}$/.test(host) || host === '[::1]');
}

export interface SessionCookieOptions {
  httpOnly: true;
  secure: boolean;
  sameSite: 'strict';
  path: '/';
}

export function sessionCookieOptions(publicUrl: string): SessionCookieOptions {
  return { httpOnly: true, secure: cookieIsSecure(publicUrl), sameSite: 'strict', path: '/' };
}

// The Set-Cookie header is written directly: the cookie plugin's own writing runs as a hook on
// every response, and only sign-in and sign-out ever set this cookie.
export function setSessionCookie(reply: FastifyReply, publicUrl: string, token: string, expiresAt: string, now: Date): void {
  const maxAge = Math.max(0, Math.floor((Date.parse(expiresAt) - now.getTime()) / 1000));
  reply.header('set-cookie', reply.server.serializeCookie(SESSION_COOKIE, token, { ...sessionCookieOptions(publicUrl), maxAge }));
}

export function clearSessionCookie(reply: FastifyReply, publicUrl: string): void {
  reply.header('set-cookie', reply.server.serializeCookie(SESSION_COOKIE, '', { ...sessionCookieOptions(publicUrl), maxAge: 0, expires: new Date(0) }));
}

/** The access rule a route declares, or undefined when it declares none. Throws on contradictions. */
export function routeAccess(url: string, config: Partial<FastifyContextConfig> | null | undefined): RouteAccess | undefined {
  const declared = [config?.public === true, config?.authenticated === true, config?.permission !== undefined].filter(Boolean).length;
  if (declared > 1) throw new Error(`route ${url} declares more than one of config.public, config.authenticated and config.permission`);
  if (config?.public === true) return { kind: 'public' };
  if (config?.authenticated === true) return { kind: 'authenticated' };
  if (config?.permission !== undefined) {
    if (!Object.hasOwn(PERMISSIONS, config.permission)) throw new Error(`route ${url} names an unknown permission "${String(config.permission)}"`);
    return { kind: 'permission', permission: config.permission };
  }
  if (PUBLIC_PREFIXES.some((prefix) => url === prefix || url.startsWith(`${prefix}/`))) return { kind: 'documentation' };
  return undefined;
}

/**
 * Installs the cookie parser, the registration check and the per-request check on `app`
 * (the root instance, so they apply to every route).
 */
export async function registerAuth(app: FastifyInstance, options: AuthOptions): Promise<void> {
  const { staff, publicUrl, audit } = options;
  const registry: RegisteredRoute[] = [];
  registries.set(app, registry);

  // Cookies are parsed only where a session is looked for (sessionToken): most calls carry an
  // API key, and a parse on every request is work for nothing.
  await app.register(cookie, { hook: false });
  app.decorateRequest('actor', null);
  app.decorateRequest('session', null);

  app.addHook('onRoute', (route) => {
    const access = routeAccess(route.url, route.config);
    if (!access) {
      throw new Error(
        `route ${String(route.method)} ${route.url} declares no access rule: add config: { permission: '…' }, config: { authenticated: true } or config: { public: true }`,
      );
    }
    for (const method of routeMethods(route)) registry.push({ method, url: route.url, access });
    if (access.kind !== 'public' && access.kind !== 'documentation') addOnRequestHook(route, accessCheck(access, route.url));
  });
  // A route registered before this point has no check: the app does not start with one.
  app.addHook('onReady', async () => {
    const checked = new Set(registry.map((route) => `${route.method} ${route.url}`));
    const unchecked = (trackedRoutes.get(app) ?? []).filter((route) => !checked.has(`${route.method} ${route.url}`));
    if (unchecked.length > 0) throw new Error(`routes registered before registerAuth have no access check: ${unchecked.map((route) => `${route.method} ${route.url}`).join(', ')}`);
  });

  const unauthorised = (reply: FastifyReply, error: PledgeError, clearCookie: boolean): PledgeError => {
    // RFC 9110: a 401 names the scheme the client can use.
    reply.header('www-authenticate', 'Bearer realm="pledge"');
    if (clearCookie) clearSessionCookie(reply, publicUrl);
    return error;
  };

  const authenticate = async (request: FastifyRequest, reply: FastifyReply, authorization: string | undefined): Promise<Actor> => {
    if (authorization !== undefined) {
      const token = bearerToken(authorization);
      if (token === undefined) throw unauthorised(reply, new PledgeError('unauthenticated', 'the Authorization header must be "Bearer pk_…"'), false);
      try {
        return await staff.authenticateApiKey(token);
      } catch (error) {
        if (isPledgeError(error) && error.status === 401) throw unauthorised(reply, error, false);
        throw error;
      }
    }
    const token = sessionToken(request);
    if (!token) throw unauthorised(reply, new PledgeError('unauthenticated', 'sign in, or send an API key as Authorization: Bearer pk_…'), false);
    let session: SessionInfo;
    try {
      session = await staff.authenticateSession(token);
    } catch (error) {
      if (isPledgeError(error) && error.status === 401) throw unauthorised(reply, error, true);
      throw error;
    }
    request.session = session;
    if (UNSAFE_METHODS.has(request.method)) {
      const presented = request.headers[CSRF_HEADER];
      if (!staff.checkCsrf(session, typeof presented === 'string' ? presented : undefined)) {
        throw new PledgeError('csrf_failed', 'send the X-CSRF-Token header with the token given at sign-in (GET /v1/auth/me returns it again)');
      }
    }
    return session.actor;
  };

  const refuse = async (request: FastifyRequest, actor: Actor, permission: Permission, url: string): Promise<never> => {
    if (audit) await audit.record([{ actor, action: 'access.denied', details: { permission, route: `${request.method} ${url}` } }]);
    throw new PledgeError('forbidden', `this needs the ${permission} permission`, { details: { permission } });
  };

  const authenticateAndAuthorise = async (request: FastifyRequest, reply: FastifyReply, access: RouteAccess, url: string): Promise<void> => {
    const actor = await authenticate(request, reply, request.headers.authorization);
    request.actor = actor;
    if (access.kind === 'permission' && !actorAllows(actor, access.permission)) await refuse(request, actor, access.permission, url);
  };

  /**
   * The key a connection's last call was let through with, by its whole Authorization header.
   * A service sends the same header on every call of a kept-alive connection; comparing it
   * with the last one costs less than hashing the key again to find it in the cache (the most
   * expensive step of an API call's check). The comparison takes constant time: behind a proxy
   * that shares its connections, the last header may be another client's. It is kept only as
   * long as the connection, is never shared with another connection, and holds no longer than
   * the cache would (StaffService.isStillKnown): a revocation or an expiry ends it as it ends
   * the cache's.
   */
  const keptKeys = new WeakMap<object, { authorization: string; known: KnownApiKey }>();
  const knownApiKeyActor = (connection: object | undefined, authorization: string): Actor | undefined => {
    const kept = connection && keptKeys.get(connection);
    if (kept && sameTextInConstantTime(kept.authorization, authorization) && staff.isStillKnown(kept.known)) return kept.known.actor;
    const token = bearerToken(authorization);
    const known = token === undefined ? undefined : staff.knownApiKey(token);
    if (known && connection) keptKeys.set(connection, { authorization, known });
    return known?.actor;
  };

  /**
   * The route's check, with its rule decided at registration. A callback hook, not an async
   * one: a service calling with a key verified moments ago is let through without a promise or
   * a database read — this runs before every API call.
   */
  const accessCheck = (access: RouteAccess, url: string): onRequestHookHandler =>
    function checkAccess(request, reply, done) {
      // Answers for a caller must not be kept by shared caches.
      reply.header('cache-control', 'no-store');
      const authorization = request.headers.authorization;
      const known = authorization === undefined ? undefined : knownApiKeyActor(request.raw.socket, authorization);
      if (known && (access.kind !== 'permission' || actorAllows(known, access.permission))) {
        request.actor = known;
        return done();
      }
      authenticateAndAuthorise(request, reply, access, url).then(() => done(), done);
    };
}

const trackedRoutes = new WeakMap<FastifyInstance, Array<{ method: string; url: string }>>();

/**
 * Records every route registered on `app` from now on, so that registerAuth can refuse to
 * start an app with a route it never saw. Called first thing on a new app (createHttpApp).
 */
export function trackRoutes(app: FastifyInstance): void {
  const routes: Array<{ method: string; url: string }> = [];
  trackedRoutes.set(app, routes);
  app.addHook('onRoute', (route) => {
    for (const method of routeMethods(route)) routes.push({ method, url: route.url });
  });
}

function routeMethods(route: RouteOptions): string[] {
  return Array.isArray(route.method) ? route.method : [route.method];
}

function bearerToken(authorization: string): string | undefined {
  return /^Bearer +(\S+) *$/i.exec(authorization)?.[1];
}

/** The console session's token from the request's cookies, if it sent one. */
export function sessionToken(request: FastifyRequest): string | undefined {
  const header = request.headers.cookie;
  return header ? request.server.parseCookie(header)[SESSION_COOKIE] : undefined;
}
