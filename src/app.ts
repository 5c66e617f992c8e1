import type { FastifyInstance } from 'fastify';
import type { Config } from './core/config.js';
import { VERSION } from './core/package.js';
import { createEngine, type Engine, type EngineOptions } from './engine.js';
import { createHttpApp } from './http/server.js';
import { registerSystemRoutes } from './http/system.routes.js';
import { registerPolicyRoutes } from './policy/policy.routes.js';

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
    registerSystemRoutes(http, { database: engine.database, policy: engine.policy, version: VERSION });
    registerPolicyRoutes(http, engine.policy);
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
