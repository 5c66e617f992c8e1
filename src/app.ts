import type { FastifyInstance } from 'fastify';
import { registerAuditRoutes } from './audit/audit.routes.js';
import { registerCommsRoutes } from './comms/comms.routes.js';
import { registerConsentRoutes } from './consent/consent.routes.js';
import type { Config } from './core/config.js';
import { VERSION } from './core/package.js';
import { createEngine, type Engine, type EngineOptions } from './engine.js';
import { registerAuth } from './http/auth.js';
import { createHttpApp, registerApiDocs } from './http/server.js';
import { registerSystemRoutes } from './http/system.routes.js';
import { registerPolicyRoutes } from './policy/policy.routes.js';
import { registerRequestRoutes } from './requests/requests.routes.js';
import { registerRetentionRoutes } from './retention/retention.routes.js';
import { registerStaffRoutes } from './staff/staff.routes.js';
import { registerSubjectRoutes } from './subjects/subjects.routes.js';

export type AppOptions = EngineOptions;

export interface App extends Engine {
  readonly http: FastifyInstance;
}

/**
 * The engine with its HTTP API, ready but not listening: `pledge serve` calls `listen`, tests
 * call `inject`.
 *
 *   const app = await createApp(loadConfig().config);
 *   const response = await app.http.inject({ url: '/health' });
 */
export async function createApp(config: Config, options: AppOptions = {}): Promise<App> {
  const engine = await createEngine(config, options);
  try {
    const http = await createHttpApp({ config, logger: engine.logger, version: VERSION });
    // Before any route: from here on a route without an access rule cannot be registered.
    await registerAuth(http, { staff: engine.staff, publicUrl: config.publicUrl, audit: engine.audit });
    await registerApiDocs(http);
    registerSystemRoutes(http, { database: engine.database, policy: engine.policy, version: VERSION });
    registerPolicyRoutes(http, engine.policy);
    registerStaffRoutes(http, engine.staff, { publicUrl: config.publicUrl, clock: engine.clock });
    registerSubjectRoutes(http, engine.subjects);
    registerConsentRoutes(http, engine.consent, { countryHeader: config.countryHeader });
    registerCommsRoutes(http, engine.comms);
    registerRequestRoutes(http, engine.requests);
    registerRetentionRoutes(http, engine.retention);
    registerAuditRoutes(http, engine.audit);
    await http.ready();
    return Object.assign(Object.create(null) as object, engine, {
      http,
      async close() {
        await http.close();
        await engine.close();
      },
    }) as App;
  } catch (error) {
    await engine.close();
    throw error;
  }
}
