import path from 'node:path';
import { createApp, type App } from '../../src/app.js';
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
  cleanup(): Promise<void>;
}

export async function createTestApp(dialect: TestDialect, flags: ConfigFlags = {}, env: NodeJS.ProcessEnv = {}): Promise<TestApp> {
  const database = await createTestDatabase(dialect);
  const directory = temporaryDirectory('pledge-app-');
  const dataDir = path.join(directory.path, 'data');
  const { config } = loadConfig(env, { dataDir, databaseUrl: database.url, policy: 'examples/demo/pledge.yaml', ...flags });
  try {
    const app = await createApp(config, { logger: createLogger('silent') });
    return {
      app,
      dataDir,
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
