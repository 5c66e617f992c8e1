/**
 * A `pledge serve`-like process for the crash test: builds the engine on the test databases
 * with the shop datastore and runs the job runner.
 * - mode crash: the shop's erasure stops in the middle of its transaction and prints `erasing`;
 *   the test then kills this process with SIGKILL.
 * - mode resume: runs jobs until the request is completed, prints `completed` and exits.
 *
 *   node dist/src/requests/requests.test-worker.js '{"mode":"crash",…}'
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadConfig } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { createEngine } from '../engine.js';
import { loadPolicyFile, requirePolicy } from '../policy/policy.load.js';
import { RecordingNotifier, ShopHandler } from './requests.test-support.js';

interface WorkerSettings {
  mode: 'crash' | 'resume';
  dataDir: string;
  databaseUrl: string;
  keystoreUrl: string;
  masterKey: string;
  shopFile: string;
  requestId: string;
  leaseMs: number;
}

async function main(): Promise<void> {
  const settings = JSON.parse(process.argv[2] ?? '{}') as WorkerSettings;
  const { config } = loadConfig({ PLEDGE_MASTER_KEY: settings.masterKey, PLEDGE_KEYSTORE_URL: settings.keystoreUrl }, { dataDir: settings.dataDir, databaseUrl: settings.databaseUrl });
  const hang = async () => {
    process.stdout.write('erasing\n');
    await new Promise(() => {});
  };
  const engine = await createEngine(config, {
    policy: requirePolicy(loadPolicyFile(path.resolve('examples/demo/pledge.yaml'))),
    logger: createLogger('silent'),
    requestNotifier: new RecordingNotifier(),
    jobs: { leaseMs: settings.leaseMs, pollMs: 50, backoffMs: 100 },
    requestSystems: (systems) => systems.register(new ShopHandler(settings.shopFile, settings.mode === 'crash' ? { duringErase: hang } : {})),
  });
  engine.jobs.start();
  if (settings.mode === 'crash') return;
  for (;;) {
    const view = await engine.requests.get(settings.requestId);
    if (view.status === 'completed' || view.status === 'failed') {
      await engine.close();
      process.stdout.write(`${view.status}\n`);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
    process.exitCode = 1;
  });
}
