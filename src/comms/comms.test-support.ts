import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { App } from '../app.js';
import { manualClock, type ManualClock } from '../core/clock.js';
import { createTestApp } from '../../test/support/app.js';
import type { TestDialect } from '../../test/support/databases.js';

/**
 * Test policies for mail: the demo policy with its newsletter under legitimate interest (an
 * opt-out purpose: marketing may be sent until the person unsubscribes, so the opt-out is
 * what decides), and a version 2.0 whose newsletter may use more contact data (a material
 * change that calls for notices by email).
 */
export function writeMailPolicies(directory: string): { v1: string; v2: string } {
  const demo = readFileSync(path.resolve('examples/demo/pledge.yaml'), 'utf8');
  const marketing = '    legal_basis: consent\n    categories: [user.name, user.contact.email, user.behavior.purchase_history]';
  if (!demo.includes(marketing)) throw new Error('the demo policy changed: update writeMailPolicies');
  const v1 = demo.replace(marketing, marketing.replace('consent', 'legitimate_interest'));
  const v2 = v1
    .replace('categories: [user.name, user.contact.email, user.behavior.purchase_history]', 'categories: [user.name, user.contact, user.behavior.purchase_history]')
    .replace(/\n {2}version: "1\.0"/, '\n  version: "2.0"');
  const files = { v1: path.join(directory, 'v1.yaml'), v2: path.join(directory, 'v2.yaml') };
  writeFileSync(files.v1, v1);
  writeFileSync(files.v2, v2);
  return files;
}

export interface MailTestApp {
  app: App;
  clock: ManualClock;
  dataDir: string;
  policies: { v1: string; v2: string };
  databaseUrl: string;
  masterKey: string;
  cleanup(): Promise<void>;
}

/** The whole app (createApp, as `pledge serve` builds it) on a fresh database, with a manual clock. */
export async function createMailTestApp(dialect: TestDialect, env: NodeJS.ProcessEnv = {}): Promise<MailTestApp> {
  const masterKey = randomBytes(32).toString('hex');
  const clock = manualClock(new Date());
  let policies: { v1: string; v2: string } | undefined;
  const test = await createTestApp(dialect, {}, { PLEDGE_MASTER_KEY: masterKey, PLEDGE_PUBLIC_URL: 'https://privacy.example.test', ...env }, {
    clock,
    prepare: (directory) => {
      policies = writeMailPolicies(directory);
      return { policy: policies.v1 };
    },
  });
  return { app: test.app, clock, dataDir: test.dataDir, policies: policies!, databaseUrl: test.databaseUrl, masterKey, cleanup: test.cleanup };
}

/** The day `days` after `from`, as a policy's effective date (YYYY-MM-DD). */
export function dayAfter(from: Date, days: number): string {
  return new Date(from.getTime() + days * 86_400_000).toISOString().slice(0, 10);
}
