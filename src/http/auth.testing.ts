import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { ROLES, roleAllows, type Role } from '../staff/permissions.js';
import type { StaffService } from '../staff/staff.service.js';
import { CSRF_HEADER, registeredRoutes, SESSION_COOKIE, type RegisteredRoute } from './auth.js';

/**
 * The route-table test, for any app built with registerAuth: every registered route that is
 * not public answers 401 without credentials, 403 to a session whose role lacks its
 * permission, and neither 401 nor 403 to a role that has it. Routes are read from the
 * registry registerAuth fills, so a route added later is covered without touching a test.
 *
 *   test('every route enforces its permission', async () => {
 *     const checked = await authorisationCases(app.http, app.staff);
 *     assert.ok(checked.length > 0);
 *   });
 *
 * It creates one staff account per role (random emails under example.test) and signs them in
 * through the service. Requests carry no body, so routes that take one stop at validation
 * rather than change anything; a call that ends its own session (sign-out) is followed by a
 * fresh sign-in.
 */
export interface AuthorisationCase {
  method: string;
  url: string;
  /** The route's permission, or 'authenticated'. */
  requires: string;
  who: 'anonymous' | Role;
  expected: 'unauthenticated' | 'forbidden' | 'allowed';
  status: number;
}

interface SignedIn {
  token: string;
  csrfToken: string;
}

/** A concrete path for a route pattern: every parameter becomes a placeholder. */
function concretePath(url: string): string {
  return url.replace(/:[A-Za-z0-9_]+(\([^)]*\))?/g, 'placeholder').replace(/\*/g, 'placeholder');
}

export async function authorisationCases(app: FastifyInstance, staff: StaffService): Promise<AuthorisationCase[]> {
  const routes = registeredRoutes(app).filter(
    (route): route is RegisteredRoute & { access: { kind: 'permission' | 'authenticated' } } =>
      route.access.kind === 'permission' || route.access.kind === 'authenticated',
  );
  const password = `route-table ${randomBytes(12).toString('hex')}`;
  const emails = new Map<Role, string>();
  for (const role of ROLES) {
    const email = `authz-${role.replace(/_/g, '-')}-${randomBytes(4).toString('hex')}@example.test`;
    await staff.addStaff({ email, name: `Route table ${role}`, role, password });
    emails.set(role, email);
  }
  let signIns = 0;
  const signIn = async (role: Role): Promise<SignedIn> => {
    // Each sign-in from its own address: the per-address limit is not what is being tested.
    const result = await staff.login(emails.get(role)!, password, { ip: `route-table-${signIns++}` });
    return { token: result.token, csrfToken: result.csrfToken };
  };
  const sessions = new Map<Role, SignedIn>();
  for (const role of ROLES) sessions.set(role, await signIn(role));

  const cases: AuthorisationCase[] = [];
  const failures: string[] = [];
  for (const route of routes) {
    const url = concretePath(route.url);
    const requires = route.access.kind === 'permission' ? route.access.permission : 'authenticated';
    const label = `${route.method} ${route.url}`;

    const anonymous = await app.inject({ method: route.method as 'GET', url });
    cases.push({ method: route.method, url: route.url, requires, who: 'anonymous', expected: 'unauthenticated', status: anonymous.statusCode });
    if (anonymous.statusCode !== 401) failures.push(`${label} without credentials answered ${anonymous.statusCode}, not 401`);
    else if (route.method !== 'HEAD' && anonymous.json().code !== 'unauthenticated') failures.push(`${label} without credentials: code ${anonymous.json().code}`);

    for (const role of ROLES) {
      const allowed = route.access.kind === 'authenticated' || roleAllows(role, route.access.permission);
      const session = sessions.get(role)!;
      const response = await app.inject({
        method: route.method as 'GET',
        url,
        cookies: { [SESSION_COOKIE]: session.token },
        headers: { [CSRF_HEADER]: session.csrfToken },
      });
      cases.push({ method: route.method, url: route.url, requires, who: role, expected: allowed ? 'allowed' : 'forbidden', status: response.statusCode });
      if (allowed && (response.statusCode === 401 || response.statusCode === 403)) {
        failures.push(`${label} as ${role} (has ${requires}) answered ${response.statusCode}`);
      } else if (!allowed && response.statusCode !== 403) {
        failures.push(`${label} as ${role} (lacks ${requires}) answered ${response.statusCode}, not 403`);
      } else if (!allowed && route.method !== 'HEAD' && response.json().code !== 'forbidden') {
        failures.push(`${label} as ${role}: code ${response.json().code}, not forbidden`);
      }
      // The call may have ended the session (sign-out): sign in again for the next route.
      try {
        await staff.authenticateSession(session.token);
      } catch {
        sessions.set(role, await signIn(role));
      }
    }
  }
  assert.deepEqual(failures, [], 'routes whose access rule is not enforced');
  return cases;
}
