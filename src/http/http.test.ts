import assert from 'node:assert/strict';
import { existsSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createApp } from '../app.js';
import { loadConfig } from '../core/config.js';
import { PledgeError } from '../core/errors.js';
import { createLogger } from '../core/logger.js';
import { Policy } from '../policy/policy.model.js';
import { PolicyService } from '../policy/policy.service.js';
import { createTestApp, type TestApp } from '../../test/support/app.js';
import { createTestDatabase, temporaryDirectory, testDialects } from '../../test/support/databases.js';

for (const dialect of testDialects()) {
  describe(`HTTP on ${dialect}`, () => {
    let testApp: TestApp;
    before(async () => {
      testApp = await createTestApp(dialect);
    });
    after(() => testApp.cleanup());
    const inject = (url: string, headers: Record<string, string> = {}) => testApp.app.http.inject({ method: 'GET', url, headers });

    test('GET /health reports the database and the policy, and nothing personal', async () => {
      const response = await inject('/health');
      assert.equal(response.statusCode, 200);
      const body = response.json();
      assert.equal(body.status, 'ok');
      assert.deepEqual(body.database, { dialect, reachable: true });
      assert.equal(body.policy.version, '1.0');
      assert.match(body.policy.hash, /^[0-9a-f]{64}$/);
      assert.equal(body.policy.published, true, 'the first start records its policy');
      assert.equal(body.policy.in_force, '1.0');
      assert.equal(response.headers['cache-control'], 'no-store');
    });

    test('JSON API answers carry the API security headers; pages the full set', async () => {
      const api = await inject('/v1/subjects/sub_00000000000000000000000000');
      assert.equal(api.statusCode, 401);
      assert.equal(api.headers['x-content-type-options'], 'nosniff');
      assert.equal(api.headers['content-security-policy'], "default-src 'none'; frame-ancestors 'none'");
      assert.equal(api.headers['cross-origin-resource-policy'], 'same-site');
      const missing = await inject('/no/such/page');
      assert.equal(missing.statusCode, 404);
      assert.match(String(missing.headers['content-security-policy']), /default-src 'self'/, 'an unmatched path gets the full set');
      assert.ok(missing.headers['referrer-policy']);
      const page = await inject('/v1/unsubscribe?token=not-a-token');
      assert.match(String(page.headers['content-security-policy']), /style-src 'self' 'unsafe-inline'/, 'a page people open from a mail keeps the page set');
    });

    test('GET /policy is the rendered page, with security headers and caching', async () => {
      const response = await inject('/policy');
      assert.equal(response.statusCode, 200);
      assert.equal(response.headers['content-type'], 'text/html; charset=utf-8');
      assert.match(response.body, /<!doctype html>/i);
      assert.match(response.body, /Northwind Books/);
      assert.match(String(response.headers['content-security-policy']), /default-src 'self'/);
      assert.match(String(response.headers['content-security-policy']), /frame-ancestors 'none'/);
      assert.equal(response.headers['x-content-type-options'], 'nosniff');
      const etag = String(response.headers.etag);
      const again = await inject('/policy', { 'if-none-match': etag });
      assert.equal(again.statusCode, 304);
      assert.equal(again.body, '');
    });

    test('GET /policy.md and /policy.json', async () => {
      const markdown = await inject('/policy.md');
      assert.equal(markdown.statusCode, 200);
      assert.equal(markdown.headers['content-type'], 'text/markdown; charset=utf-8');
      assert.match(markdown.body, /^# .*Northwind Books/m);
      const json = await inject('/policy.json');
      assert.equal(json.statusCode, 200);
      const body = json.json();
      assert.equal(body.version, '1.0');
      assert.equal(body.effective_date, '2026-01-15');
      assert.equal(body.policy.organization.name, 'Northwind Books');
      assert.equal(body.policy.purposes.length, 6);
    });

    test('GET /.well-known/gpc.json follows the GPC specification', async () => {
      const response = await inject('/.well-known/gpc.json');
      assert.equal(response.statusCode, 200);
      assert.match(String(response.headers['content-type']), /^application\/json/);
      assert.deepEqual(response.json(), { gpc: true, lastUpdate: '2026-01-15' });
      assert.equal(response.headers['access-control-allow-origin'], '*');
    });

    test('GET /openapi.json describes the routes; /docs serves the browsable page', async () => {
      const response = await inject('/openapi.json');
      assert.equal(response.statusCode, 200);
      const document = response.json();
      assert.equal(document.openapi, '3.1.0');
      for (const route of ['/health', '/policy', '/policy.md', '/policy.json', '/.well-known/gpc.json', '/policy/schema.json']) {
        assert.ok(document.paths[route]?.get, `${route} is documented`);
      }
      let docs = await inject('/docs');
      if (docs.statusCode === 302) docs = await inject(String(docs.headers.location).replace(/^\.?\/?/, '/docs/'));
      assert.equal(docs.statusCode, 200);
      assert.match(docs.body, /swagger-ui/i);
    });

    test('an unknown route is a problem+json 404 that does not echo the path', async () => {
      const response = await inject('/no/such/route/jane@example.com');
      assert.equal(response.statusCode, 404);
      assert.equal(response.headers['content-type'], 'application/problem+json; charset=utf-8');
      const body = response.json();
      assert.equal(body.code, 'not_found');
      assert.equal(body.type, '/problems/not_found');
      assert.equal(body.status, 404);
      assert.equal(body.title, 'Not found');
      assert.ok(body.requestId);
      assert.ok(!response.body.includes('jane'), 'no personal data in the error');
    });

    test('a path that exists, asked with a method it does not take, is a 405 naming the methods it takes', async () => {
      const subject = 'sub_00000000000000000000000000';
      const cases: Array<[string, string, string]> = [
        ['DELETE', '/health', 'GET, HEAD'],
        ['PUT', `/v1/subjects/${subject}/preferences`, 'GET, HEAD, PATCH'],
        ['PUT', `/v1/subjects/${subject}/preferences/`, 'GET, HEAD, PATCH'],
        ['GET', '/v1/unsubscribe/?token=x', ''],
        ['PATCH', '/v1/consent/events?x=jane@example.com', 'GET, HEAD, POST'],
        // A static route wins over a parametric one, as in the router: lookup is not a subject id.
        ['PUT', '/v1/subjects/lookup', 'POST'],
        ['PUT', '/v1/subjects/batch/', 'PATCH, POST'],
        ['PUT', `/v1/subjects/${subject}`, 'DELETE, GET, HEAD, PATCH'],
      ];
      for (const [method, url, allow] of cases) {
        const response = await testApp.app.http.inject({ method: method as 'GET', url });
        if (!allow) {
          assert.notEqual(response.statusCode, 405, `${method} ${url} is a route`);
          continue;
        }
        assert.equal(response.statusCode, 405, `${method} ${url}: ${response.body}`);
        assert.equal(response.headers.allow, allow);
        assert.equal(response.headers['content-type'], 'application/problem+json; charset=utf-8');
        assert.equal(response.json().code, 'method_not_allowed');
        assert.ok(!response.body.includes('jane') && !response.body.includes(subject), 'the address is not echoed');
      }
      assert.equal((await testApp.app.http.inject({ method: 'DELETE', url: '/no/such/route' })).statusCode, 404);
    });

    test('problem types are described at their type URI', async () => {
      const page = await inject('/problems/policy_invalid');
      assert.equal(page.statusCode, 200);
      assert.match(page.body, /The policy is not valid/);
      assert.equal((await inject('/problems/no_such_code')).statusCode, 404);
      assert.equal((await inject('/problems/constructor')).statusCode, 404);
      assert.match((await inject('/problems')).body, /payload_too_large/);
    });

    test('the JSON Schema of the policy language is published', async () => {
      const response = await inject('/policy/schema.json');
      assert.equal(response.statusCode, 200);
      assert.equal(JSON.parse(response.body).title, 'Pledge policy');
    });

    test('the first policy is recorded once; a later start with another file records nothing and is told it was never published', async () => {
      const versions = await testApp.app.policy.listVersions();
      assert.equal(versions.length, 1);
      assert.equal(versions[0]!.hash, testApp.app.policy.policy.hash);
      assert.equal((await testApp.app.policy.recordFirstVersion(testApp.app.audit))?.id, versions[0]!.id);
      assert.equal((await testApp.app.policy.listVersions()).length, 1);
      const { entries } = await testApp.app.audit.list({ action: 'policy.activated' });
      assert.equal(entries.length, 1, 'the policy change is audited once');
      assert.equal(entries[0]!.details.hash, testApp.app.policy.policy.hash);
      assert.equal(await testApp.app.policy.publicationWarning('pledge.yaml'), undefined, 'the published policy in force: nothing to say');

      // A command started with another file (an edited pledge.yaml, or none and the demo) changes no history.
      const document = testApp.app.policy.policy.document;
      const edited = new PolicyService(new Policy({ ...document, policy: { ...document.policy, version: '9.9' } }), testApp.app.database, testApp.app.clock);
      assert.equal(await edited.recordFirstVersion(testApp.app.audit), undefined);
      assert.deepEqual((await testApp.app.policy.listVersions()).map((version) => version.id), [versions[0]!.id]);
      assert.match((await edited.publicationWarning('edited.yaml'))!, /version 9\.9\) was never published.*version in force is version .* pledge policy publish edited\.yaml --effective/);
    });
  });
}

describe('start-up', () => {
  test('a development master key is generated with mode 0600, and reused', async () => {
    const testApp = await createTestApp('sqlite');
    try {
      const file = path.join(testApp.dataDir, 'master.key');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(testApp.app.masterKey.length, 32);
      assert.equal(readFileSync(file, 'utf8').trim(), testApp.app.masterKey.toString('hex'));
    } finally {
      await testApp.cleanup();
    }
  });

  test('production refuses to start without PLEDGE_MASTER_KEY, and accepts a supplied one', async () => {
    await assert.rejects(createTestApp('sqlite', {}, { PLEDGE_ENV: 'production' }), (error: unknown) => error instanceof PledgeError && error.code === 'master_key_invalid');
    const key = 'a'.repeat(64);
    const testApp = await createTestApp('sqlite', {}, { PLEDGE_ENV: 'production', PLEDGE_MASTER_KEY: key });
    try {
      assert.equal(testApp.app.masterKey.toString('hex'), key);
      assert.equal(existsSync(path.join(testApp.dataDir, 'master.key')), false, 'no key file is written in production');
    } finally {
      await testApp.cleanup();
    }
  });

  test('an invalid policy stops the start before anything is written', async () => {
    const directory = temporaryDirectory();
    const database = await createTestDatabase('sqlite');
    try {
      const policyFile = path.join(directory.path, 'pledge.yaml');
      writeFileSync(policyFile, readFileSync('examples/demo/pledge.yaml', 'utf8').replace('legal_basis: consent', 'legal_basis: consnt'));
      const dataDir = path.join(directory.path, 'data');
      const { config } = loadConfig({}, { dataDir, policy: policyFile });
      await assert.rejects(createApp(config, { logger: createLogger('silent') }), (error: unknown) => error instanceof PledgeError && error.code === 'policy_invalid');
      assert.equal(existsSync(dataDir), false, 'no data directory, key or database was created');
    } finally {
      directory.remove();
      await database.cleanup();
    }
  });

  test('a site that does not honour GPC says so in gpc.json', async () => {
    const directory = temporaryDirectory();
    try {
      const policyFile = path.join(directory.path, 'pledge.yaml');
      writeFileSync(policyFile, readFileSync('examples/demo/pledge.yaml', 'utf8').replace(/  gpc:\n    honoured: true\n    opts_out_of: \[marketing, analytics\]\n/, ''));
      const testApp = await createTestApp('sqlite', { policy: policyFile });
      try {
        assert.deepEqual((await testApp.app.http.inject({ url: '/.well-known/gpc.json' })).json(), { gpc: false, lastUpdate: '2026-01-15' });
      } finally {
        await testApp.cleanup();
      }
    } finally {
      directory.remove();
    }
  });
});
