import path from 'node:path';
import { createApp, type App } from '../../src/app.js';
import type { Clock } from '../../src/core/clock.js';
import { loadConfig, type ConfigFlags } from '../../src/core/config.js';
import { createLogger } from '../../src/core/logger.js';
import { createTestDatabase, temporaryDirectory, type TestDialect } from './databases.js';

/**
 * A complete engine on a fresh test database and data directory, built as `pledge serve`
 * builds it but never listening: requests go through `app.http.inject`.
 */
export interface TestApp {
  app: App;
  dataDir: string;
  databaseUrl: string;
  cleanup(): Promise<void>;
}

export interface TestAppOptions {
  clock?: Clock;
  /** Called with the test's own directory before the config is read: write files there, return more flags. */
  prepare?: (directory: string) => ConfigFlags;
}

export async function createTestApp(dialect: TestDialect, flags: ConfigFlags = {}, env: NodeJS.ProcessEnv = {}, options: TestAppOptions = {}): Promise<TestApp> {
  const database = await createTestDatabase(dialect);
  const directory = temporaryDirectory('pledge-app-');
  const dataDir = path.join(directory.path, 'data');
  try {
    const prepared = options.prepare?.(directory.path) ?? {};
    const { config } = loadConfig(env, { dataDir, databaseUrl: database.url, policy: 'examples/demo/pledge.yaml', ...flags, ...prepared });
    const app = await createApp(config, { logger: createLogger('silent'), ...(options.clock ? { clock: options.clock } : {}) });
    return {
      app,
      dataDir,
      databaseUrl: database.url,
      cleanup: async () => {
        await app.close();
        await database.cleanup();
        directory.remove();
      },
    };
  } catch (error) {
    await database.cleanup();
    directory.remove();
    throw error;
  }
}
