/**
 * A second process for the retention crash test: opens the engine on the test databases given
 * on the command line, at the given instant, and sweeps in small batches, printing a line
 * after each committed batch and pausing 100 ms there, so the test can kill it (SIGKILL) in
 * the middle of a sweep.
 *
 *   node dist/src/retention/retention.test-worker.js <database-url> <keystore-url> <master-key-hex> <data-dir> <now-iso>
 */
import { pathToFileURL } from 'node:url';
import { manualClock } from '../core/clock.js';
import { loadConfig } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { createEngine } from '../engine.js';
import { loadPolicyFile, requirePolicy } from '../policy/policy.load.js';

async function main(): Promise<void> {
  const [databaseUrl, keystoreUrl, masterKeyHex, dataDir, now] = process.argv.slice(2);
  if (!databaseUrl || !keystoreUrl || !masterKeyHex || !dataDir || !now) throw new Error('usage: retention.test-worker.js DATABASE_URL KEYSTORE_URL MASTER_KEY_HEX DATA_DIR NOW');
  const { config } = loadConfig({ PLEDGE_MASTER_KEY: masterKeyHex, PLEDGE_KEYSTORE_URL: keystoreUrl }, { dataDir, databaseUrl });
  const policy = requirePolicy(loadPolicyFile('examples/demo/pledge.yaml'));
  const engine = await createEngine(config, { policy, clock: manualClock(now), logger: createLogger('silent') });
  const pause = new Int32Array(new SharedArrayBuffer(4));
  try {
    await engine.retention.run({ type: 'system', id: 'retention' }, {
      batchSize: 50,
      onProgress: (progress) => {
        if (progress.done === 0) return;
        process.stdout.write(`batch ${progress.done}\n`);
        Atomics.wait(pause, 0, 0, 100);
      },
    });
    process.stdout.write('finished\n');
  } finally {
    await engine.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
    process.exitCode = 1;
  });
}
