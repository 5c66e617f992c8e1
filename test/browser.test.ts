import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { createTestApp, type TestApp } from './support/app.js';
import { browserUnavailableReason, launchBrowser } from './support/browser.js';

const skip = browserUnavailableReason();

describe('the published pages in a real browser', { skip }, () => {
  let testApp: TestApp;
  let browser: Browser;
  let base: string;

  before(async () => {
    testApp = await createTestApp('sqlite');
    base = await testApp.app.http.listen({ port: 0, host: '127.0.0.1' });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await testApp?.cleanup();
  });

  /** Opens a page and records everything the browser complains about (CSP violations included). */
  async function open(url: string): Promise<{ page: Page; problems: string[] }> {
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('requestfailed', (request) => problems.push(`failed: ${request.url()}`));
    const response = await page.goto(url, { waitUntil: 'load' });
    assert.equal(response?.status(), 200, url);
    return { page, problems };
  }

  test('/policy renders styled, navigable and accessible under the Content-Security-Policy', async () => {
    const { page, problems } = await open(`${base}/policy`);
    try {
      assert.equal(await page.title(), 'Northwind Books Privacy Policy');
      assert.equal(await page.getAttribute('html', 'lang'), 'en');
      assert.equal(await page.locator('h1').count(), 1);
      const sections = await page.locator('main section').count();
      assert.ok(sections >= 15, `${sections} sections`);
      assert.equal(await page.locator('main section[aria-labelledby]').count(), sections, 'every section is labelled');
      // The inline stylesheet is allowed by the CSP and applied: main is a narrow column.
      // (Browser-side code is passed as text: this file is compiled without the DOM types.)
      const maxWidth = await page.evaluate("getComputedStyle(document.querySelector('main')).maxWidth");
      assert.equal(maxWidth, '768px');
      // Keyboard users can skip to the content: the first Tab reaches the skip link.
      await page.keyboard.press('Tab');
      assert.match(String(await page.evaluate("document.activeElement ? document.activeElement.textContent : ''")), /skip/i);
      // The table of contents works: following "Your rights" lands on that section.
      await page.locator('nav a[href="#your-rights"]').click();
      assert.ok(page.url().endsWith('#your-rights'));
      assert.ok(await page.locator('#your-rights').isVisible());
      await page.screenshot({ path: path.join(os.tmpdir(), 'pledge-policy-page.png'), fullPage: false });
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  });

  test('/docs shows the API documentation under the same Content-Security-Policy', async () => {
    const { page, problems } = await open(`${base}/docs`);
    try {
      await page.locator('.swagger-ui .info .title').waitFor({ timeout: 15_000 });
      assert.match(await page.locator('.swagger-ui .info .title').innerText(), /Pledge API/);
      await page.locator('.opblock-summary-path[data-path="/.well-known/gpc.json"]').first().waitFor();
      assert.deepEqual(problems.filter((problem) => /Content Security Policy|Refused/i.test(problem)), []);
    } finally {
      await page.close();
    }
  });
});
