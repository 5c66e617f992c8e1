import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import type { Clock } from '../core/clock.js';
import { isPledgeError, PledgeError } from '../core/errors.js';
import { clearSessionCookie, sessionToken, setSessionCookie } from '../http/auth.js';
import { actorAllows, PERMISSIONS, type Actor, type Permission } from './permissions.js';
import {
  ApiKeyIdParams,
  ApiKeyList,
  ApiKeySchema,
  CreateApiKeyBody,
  CreatedApiKey,
  CreateStaffBody,
  LoginBody,
  LoginResponse,
  MeResponse,
  StaffIdParams,
  StaffList,
  StaffSchema,
  UpdateStaffBody,
} from './staff.schema.js';
import type { StaffService } from './staff.service.js';

export interface StaffRouteOptions {
  /** The server's public address (decides the cookie's Secure flag; see cookieIsSecure). */
  publicUrl: string;
  clock: Clock;
}

/** The request's actor; the auth hook has set it on every non-public route. */
function actorOf(request: { actor: Actor | null }): Actor {
  if (!request.actor) throw new PledgeError('unauthenticated', 'sign in, or send an API key as Authorization: Bearer pk_…');
  return request.actor;
}

/**
 * Sign-in, sign-out, staff accounts and API keys. Thin: the auth hook has authenticated and
 * authorised, the schemas have validated; each handler makes one service call.
 */
export function registerStaffRoutes(app: FastifyInstance, staff: StaffService, options: StaffRouteOptions): void {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  r.post('/v1/auth/login', {
    config: { public: true },
    schema: {
      tags: ['auth'],
      summary: 'Sign in to the console',
      description:
        'Opens a session and sets the `pledge_session` cookie (HttpOnly, SameSite=Strict). Wrong email, wrong password and a locked account all answer 401 `invalid_credentials`. 10 attempts per minute per address (429 `rate_limited`); 5 wrong passwords in a row lock the account for 15 minutes.',
      body: LoginBody,
      response: { 200: LoginResponse },
    },
  }, async (request, reply) => {
    try {
      const result = await staff.login(request.body.email, request.body.password, { ip: request.ip });
      setSessionCookie(reply, options.publicUrl, result.token, result.expiresAt, options.clock.now());
      reply.header('cache-control', 'no-store');
      return { staff: result.staff, csrfToken: result.csrfToken, expiresAt: result.expiresAt };
    } catch (error) {
      if (isPledgeError(error) && error.code === 'rate_limited') reply.header('retry-after', String(error.details?.retryAfter ?? 60));
      throw error;
    }
  });

  r.post('/v1/auth/logout', {
    config: { authenticated: true },
    schema: { tags: ['auth'], summary: 'Sign out (ends the session)', response: { 204: { type: 'null' } } },
  }, async (request, reply) => {
    const token = sessionToken(request);
    if (request.session && token) await staff.logout(token);
    clearSessionCookie(reply, options.publicUrl);
    return reply.status(204).send(null);
  });

  r.get('/v1/auth/me', {
    config: { authenticated: true },
    schema: { tags: ['auth'], summary: 'Who is calling, with which permissions', response: { 200: MeResponse } },
  }, async (request) => {
    const actor = actorOf(request);
    const permissions = (Object.keys(PERMISSIONS) as Permission[]).filter((permission) => actorAllows(actor, permission));
    if (actor.type === 'api_key') {
      const key = await staff.getApiKey(actor.id);
      return { actor: { type: 'api_key' as const, id: actor.id }, permissions, apiKey: { id: key.id, name: key.name, prefix: key.prefix, purposes: key.purposes } };
    }
    const session = request.session!;
    return { actor: { type: 'staff' as const, id: actor.id }, permissions, staff: session.staff, csrfToken: session.csrfToken, expiresAt: session.expiresAt };
  });

  r.post('/v1/staff', {
    config: { permission: 'staff:manage' },
    schema: { tags: ['staff'], summary: 'Add a staff account', body: CreateStaffBody, response: { 201: StaffSchema } },
  }, async (request, reply) => reply.status(201).send(await staff.addStaff(request.body, actorOf(request))));

  r.get('/v1/staff', {
    config: { permission: 'staff:manage' },
    schema: { tags: ['staff'], summary: 'List staff accounts', response: { 200: StaffList } },
  }, async () => ({ items: await staff.listStaff() }));

  r.get('/v1/staff/:id', {
    config: { permission: 'staff:manage' },
    schema: { tags: ['staff'], summary: 'One staff account', params: StaffIdParams, response: { 200: StaffSchema } },
  }, async (request) => staff.getStaff(request.params.id));

  r.patch('/v1/staff/:id', {
    config: { permission: 'staff:manage' },
    schema: { tags: ['staff'], summary: "Change a staff member's role", params: StaffIdParams, body: UpdateStaffBody, response: { 200: StaffSchema } },
  }, async (request) => staff.changeRole(actorOf(request), request.params.id, request.body.role));

  r.post('/v1/staff/:id/unlock', {
    config: { permission: 'staff:manage' },
    schema: { tags: ['staff'], summary: 'Unlock an account locked after failed sign-ins', params: StaffIdParams, response: { 200: StaffSchema } },
  }, async (request) => staff.unlock(actorOf(request), request.params.id));

  r.post('/v1/staff/:id/disable', {
    config: { permission: 'staff:manage' },
    schema: {
      tags: ['staff'],
      summary: 'Disable a staff account',
      description: 'The account can no longer sign in and its sessions end at once. The last active owner cannot be disabled.',
      params: StaffIdParams,
      response: { 200: StaffSchema },
    },
  }, async (request) => staff.disableStaff(actorOf(request), request.params.id));

  r.post('/v1/api-keys', {
    config: { permission: 'keys:manage' },
    schema: {
      tags: ['api-keys'],
      summary: 'Create an API key',
      description: 'The response holds the key itself, once: Pledge stores only its hash. A key cannot get a permission its creator lacks.',
      body: CreateApiKeyBody,
      response: { 201: CreatedApiKey },
    },
  }, async (request, reply) => {
    const created = await staff.createApiKey(actorOf(request), request.body);
    return reply.status(201).header('cache-control', 'no-store').send(created);
  });

  r.get('/v1/api-keys', {
    config: { permission: 'keys:manage' },
    schema: { tags: ['api-keys'], summary: 'List API keys (never their secrets)', response: { 200: ApiKeyList } },
  }, async () => ({ items: await staff.listApiKeys() }));

  r.delete('/v1/api-keys/:id', {
    config: { permission: 'keys:manage' },
    schema: { tags: ['api-keys'], summary: 'Revoke an API key', params: ApiKeyIdParams, response: { 200: ApiKeySchema } },
  }, async (request) => staff.revokeApiKey(actorOf(request), request.params.id));
}
