import type { Permission } from '../staff/permissions.js';

/**
 * What every route declares about access: the permission it needs, or that it is public.
 * The auth layer refuses to register a route that says neither.
 */
declare module 'fastify' {
  interface FastifyContextConfig {
    permission?: Permission;
    public?: boolean;
  }
}
