import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { testBrowserSettings } from '../../src/core/config.js';

/**
 * A real, headless Chromium (Debian's package, driven by playwright-core; never a browser
 * download). Where none is installed, browser tests are skipped — and reported as skipped,
 * never as passed — unless PLEDGE_TEST_BROWSER=required (CI), where they fail.
 */
export function browserUnavailableReason(): string | undefined {
  const { executable, required } = testBrowserSettings();
  if (existsSync(executable) || required) return undefined;
  return `no Chromium at ${executable} (apt-get install chromium, or set PLEDGE_TEST_CHROMIUM)`;
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: testBrowserSettings().executable,
    headless: true,
    // Without these Chromium keeps trying to reach the network at start.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}
