import type { onRequestHookHandler, RouteOptions } from 'fastify';

/** Hooks added here, which run before a route's own, in the order they were added. */
const frameworkHooks = new WeakSet<onRequestHookHandler>();

/**
 * Adds an onRequest hook to the route being registered (called from an onRoute hook): after
 * the hooks added here before it, and before the route's own. A route's hooks are fixed when it
 * is registered, so a request pays only for its route's hooks, with their choices made.
 */
export function addOnRequestHook(route: RouteOptions, hook: onRequestHookHandler): void {
  const existing = route.onRequest;
  const hooks = (existing === undefined ? [] : Array.isArray(existing) ? [...existing] : [existing]) as onRequestHookHandler[];
  let position = 0;
  while (position < hooks.length && frameworkHooks.has(hooks[position]!)) position++;
  hooks.splice(position, 0, hook);
  frameworkHooks.add(hook);
  route.onRequest = hooks;
}
