import { readFileSync } from 'node:fs';
import path from 'node:path';
import { buildShop } from '../examples/shop/build-shop.js';
import { manualClock } from '../src/core/clock.js';
import { loadConfig } from '../src/core/config.js';
import { createLogger } from '../src/core/logger.js';
import { createEngine } from '../src/engine.js';
import { loadPolicyText, requirePolicy } from '../src/policy/policy.load.js';
import { temporaryDirectory } from '../test/support/databases.js';
import { createTestDatastore } from '../test/support/datastores.js';
import type { ResultRow } from './support.js';

/**
 * A retention sweep of the example shop (examples/shop) as `pledge retention run` does it, on a
 * freshly built shop of `customers` customers (two log-ins each on average): at 2025-06-01 every
 * log-in (rule browsing_logs, 90 days from collection) has expired and is deleted, the
 * newsletter sign-ups lose their IP address, and orders past their 3 years stay for the tax
 * exception. Peak resident memory is sampled every 20 ms during the sweep.
 */
const SWEEP_AT = '2025-06-01T00:00:00.000Z';

export async function benchShopRetention(options: { customers: number; postgres: boolean }): Promise<ResultRow[]> {
  const rows: ResultRow[] = [];
  for (const dialect of ['sqlite', ...(options.postgres ? ['postgres' as const] : [])] as const) {
    const shop = await createTestDatastore(dialect);
    const directory = temporaryDirectory('pledge-bench-shop-retention-');
    try {
      const seedStarted = performance.now();
      await buildShop(shop.url, { customers: options.customers });
      const seeded = (performance.now() - seedStarted) / 1000;

      const policy = requirePolicy(loadPolicyText(readFileSync('examples/shop/pledge.yaml', 'utf8'), 'examples/shop/pledge.yaml'));
      const { config } = loadConfig({ PLEDGE_MASTER_KEY: 'ab'.repeat(32) }, { dataDir: path.join(directory.path, 'pledge') }, directory.path);
      const engine = await createEngine(config, { policy, clock: manualClock(SWEEP_AT), logger: createLogger('silent'), datasetEnv: { SHOP_DATABASE_URL: shop.url } });
      try {
        const startRss = process.memoryUsage().rss;
        let peakRss = startRss;
        const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);
        const started = performance.now();
        const report = await engine.retention.run({ type: 'system', id: 'bench' });
        const seconds = (performance.now() - started) / 1000;
        clearInterval(sampler);
        const deleted = report.outcomes.filter((outcome) => outcome.action === 'delete').reduce((sum, outcome) => sum + outcome.rows, 0);
        const label = dialect === 'sqlite' ? 'SQLite' : 'PostgreSQL';
        const perMillion = (seconds * 1_000_000) / Math.max(1, deleted);
        rows.push(
          {
            benchmark: `retention sweep of the shop (${options.customers.toLocaleString('en-US')} customers; every step of the policy, audited; ${label}; built in ${Math.round(seeded)} s)`,
            measured: `${seconds.toFixed(1)} s: ${deleted.toLocaleString('en-US')} expired rows deleted (${Math.round(deleted / seconds).toLocaleString('en-US')} rows/s), ${(report.totals.rows - deleted).toLocaleString('en-US')} other changes, ${report.totals.keptByException.toLocaleString('en-US')} kept by exception; ${perMillion.toFixed(1)} s per million deleted`,
            ceiling: '—',
            ratio: '—',
            target: '≤ 20 s per 1,000,000 deleted',
            verdict: deleted >= 1_000 && perMillion <= 20 ? 'pass' : 'FAIL',
          },
          {
            benchmark: `retention sweep of the shop, resident memory (${label})`,
            measured: `peak ${Math.round(peakRss / 1e6)} MB, ${Math.round((peakRss - startRss) / 1e6)} MB above the start of the sweep`,
            ceiling: '—',
            ratio: '—',
            target: 'flat (batched)',
            verdict: 'info',
          },
        );
      } finally {
        await engine.close();
      }
    } finally {
      directory.remove();
      await shop.cleanup();
    }
  }
  return rows;
}
