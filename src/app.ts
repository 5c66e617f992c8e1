import type { FastifyInstance } from 'fastify';
import { systemClock, type Clock } from './core/clock.js';
import type { Config } from './core/config.js';
import { loadMasterKey } from './core/crypto.js';
import { migrate, openDatabase, type Database } from './core/db.js';
import { createLogger, type Logger } from './core/logger.js';
import { createHttpApp } from './http/server.js';
import { registerSystemRoutes } from './http/system.routes.js';
import { loadPolicyFile, requirePolicy } from './policy/policy.load.js';
import type { Policy } from './policy/policy.model.js';
import { registerPolicyRoutes } from './policy/policy.routes.js';
import { PolicyService } from './policy/policy.service.js';
import { VERSION } from './core/package.js';

export interface AppOptions {
  clock?: Clock;
  logger?: Logger;
  /** A policy already loaded (tests); otherwise read from config.policyPath. */
  policy?: Policy;
  /** Where start-up warnings go (the CLI prints them for people); default: the log. */
  warn?: (message: string) => void;
}

export interface App {
  readonly config: Config;
  readonly http: FastifyInstance;
  readonly database: Database;
  readonly policy: PolicyService;
  readonly masterKey: Buffer;
  readonly logger: Logger;
  close(): Promise<void>;
}

/**
 * Builds the whole engine from its configuration — policy, keys, database, domains, HTTP —
 * without listening. The order matters: the policy is validated before anything is written,
 * so an invalid policy leaves no data directory, key or database behind.
 *
 *   const app = await createApp(loadConfig().config);
 *   const response = await app.http.inject({ url: '/health' });
 */
export async function createApp(config: Config, options: AppOptions = {}): Promise<App> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger(config.logLevel);
  const policy = options.policy ?? requirePolicy(loadPolicyFile(config.policyPath));

  const warn = options.warn ?? ((message: string) => logger.warn(message));
  const masterKey = loadMasterKey(config);
  for (const warning of masterKey.warnings) warn(warning);

  const database = openDatabase(config.databaseUrl);
  try {
    await migrate(database);
    const policyService = new PolicyService(policy, database, clock);
    await policyService.recordActiveVersion();

    const http = await createHttpApp({ config, logger, version: VERSION });
    registerSystemRoutes(http, { database, policy: policyService, version: VERSION });
    registerPolicyRoutes(http, policyService);
    await http.ready();

    return {
      config,
      http,
      database,
      policy: policyService,
      masterKey: masterKey.key,
      logger,
      async close() {
        await http.close();
        await database.close();
      },
    };
  } catch (error) {
    await database.close();
    throw error;
  }
}
