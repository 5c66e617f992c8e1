import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createTestApp, type TestApp } from '../../test/support/app.js';
import { testDialects } from '../../test/support/databases.js';
import { registeredRoutes } from './auth.js';
import { PROBLEM_MEDIA_TYPE, PROBLEM_REF } from './openapi.js';

type Json = Record<string, unknown>;
interface Operation {
  path: string;
  method: string;
  operation: {
    security?: unknown;
    tags?: string[];
    parameters?: Array<{ name: string; in: string; required?: boolean }>;
    responses: Record<string, { description?: unknown; content?: Record<string, { schema?: { $ref?: string } }> }>;
  };
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

function operations(document: Json): Operation[] {
  const found: Operation[] = [];
  for (const [path, item] of Object.entries(document.paths as Record<string, Json>)) {
    for (const [method, operation] of Object.entries(item)) {
      if (METHODS.includes(method)) found.push({ path, method: method.toUpperCase(), operation: operation as Operation['operation'] });
    }
  }
  return found;
}

/** Every `$ref` anywhere in the document, with where it was found. */
function references(value: unknown, at = '#', found: Array<{ at: string; ref: string }> = []): Array<{ at: string; ref: string }> {
  if (Array.isArray(value)) value.forEach((item, index) => references(item, `${at}/${index}`, found));
  else if (value !== null && typeof value === 'object') {
    for (const [key, member] of Object.entries(value)) {
      if (key === '$ref' && typeof member === 'string') found.push({ at, ref: member });
      else references(member, `${at}/${key}`, found);
    }
  }
  return found;
}

/** A local reference (`#/components/…`) resolved in the document, as RFC 6901 reads a JSON Pointer. */
function resolve(document: Json, ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  let current: unknown = document;
  for (const raw of ref.slice(2).split('/')) {
    const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (current === null || typeof current !== 'object' || !Object.hasOwn(current, key)) return undefined;
    current = (current as Json)[key];
  }
  return current;
}

/** A Fastify route URL as an OpenAPI path: /v1/subjects/:id -> /v1/subjects/{id}. */
const openapiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)(\([^)]*\))?/g, '{$1}');

for (const dialect of testDialects()) {
  describe(`the OpenAPI document on ${dialect}`, () => {
    let testApp: TestApp;
    let document: Json;
    before(async () => {
      testApp = await createTestApp(dialect);
      const response = await testApp.app.http.inject({ url: '/openapi.json' });
      assert.equal(response.statusCode, 200);
      document = JSON.parse(response.body) as Json;
    });
    after(() => testApp.cleanup());

    test('every operation documents the problems it can answer with, through the one shared Problem schema', () => {
      const problem = (document.components as Json).schemas as Json;
      assert.ok(problem.Problem, 'components.schemas.Problem');
      const all = operations(document);
      assert.ok(all.length > 50, `${all.length} operations`);
      for (const { path, method, operation } of all) {
        // 5xx answers other than 500 may be the route's own (GET /health's 503 is a health report).
        const errors = Object.keys(operation.responses).filter((status) => /^4/.test(status) || status === '500');
        assert.ok(errors.includes('500'), `${method} ${path} documents 500`);
        for (const status of errors) {
          assert.equal(operation.responses[status]!.content?.[PROBLEM_MEDIA_TYPE]?.schema?.$ref, PROBLEM_REF, `${method} ${path} ${status} is a Problem`);
        }
      }
      const statuses = (method: string, path: string) => {
        const operation = all.find((entry) => entry.method === method && entry.path === path);
        assert.ok(operation, `${method} ${path} is documented`);
        return Object.keys(operation.operation.responses).filter((status) => /^[45]/.test(status));
      };
      assert.deepEqual(statuses('POST', '/v1/api-keys'), ['400', '401', '403', '413', '415', '422', '500']);
      assert.deepEqual(statuses('GET', '/v1/subjects/{id}'), ['400', '401', '403', '404', '500']);
      assert.deepEqual(statuses('GET', '/v1/auth/me'), ['401', '500'], 'any signed-in caller: no permission to lack');
      assert.deepEqual(statuses('POST', '/v1/auth/login'), ['400', '401', '413', '415', '429', '500']);
      assert.deepEqual(statuses('GET', '/health'), ['500', '503'], 'public, no input: only its own 503 and a failure inside');
      assert.deepEqual(statuses('GET', '/v1/packages/{token}'), ['400', '404', '500']);
      assert.ok(statuses('POST', '/v1/requests/{id}/verify').includes('429'));
    });

    test('routes that need no credentials have no security requirement; the others keep the API key or session', () => {
      assert.deepEqual(document.security, [{ apiKey: [] }, { session: [] }]);
      const documented = new Map(operations(document).map((entry) => [`${entry.method} ${entry.path}`, entry.operation]));
      let publicChecked = 0;
      let protectedChecked = 0;
      for (const route of registeredRoutes(testApp.app.http)) {
        const operation = documented.get(`${route.method} ${openapiPath(route.url)}`);
        if (!operation) continue;
        if (route.access.kind === 'public' || route.access.kind === 'documentation') {
          assert.deepEqual(operation.security, [], `${route.method} ${route.url} is public`);
          publicChecked++;
        } else {
          assert.equal(operation.security, undefined, `${route.method} ${route.url} inherits the document's requirement`);
          protectedChecked++;
        }
      }
      assert.ok(publicChecked >= 10 && protectedChecked > 40, `${publicChecked} public, ${protectedChecked} protected`);
      for (const key of ['GET /health', 'GET /policy', 'GET /policy.json', 'POST /v1/auth/login', 'GET /v1/unsubscribe', 'POST /v1/unsubscribe', 'GET /v1/packages/{token}']) {
        assert.deepEqual(documented.get(key)?.security, [], key);
      }
    });

    test('the document stays well-formed OpenAPI 3.1: every $ref resolves, paths, parameters and responses are in form', () => {
      assert.match(String(document.openapi), /^3\.1\.\d+$/);
      const info = document.info as Json;
      assert.equal(typeof info.title, 'string');
      assert.equal(typeof info.version, 'string');
      const components = document.components as { schemas: Json; securitySchemes: Json };
      for (const name of Object.keys(components.schemas)) assert.match(name, /^[a-zA-Z0-9._-]+$/, `component name ${name}`);
      const refs = references(document);
      assert.ok(refs.some(({ ref }) => ref === PROBLEM_REF));
      for (const { at, ref } of refs) assert.notEqual(resolve(document, ref), undefined, `${ref} at ${at} resolves`);
      const tags = new Set((document.tags as Array<{ name: string }>).map((tag) => tag.name));
      for (const { path, method, operation } of operations(document)) {
        const label = `${method} ${path}`;
        assert.match(path, /^\//, label);
        for (const status of Object.keys(operation.responses)) {
          assert.match(status, /^([1-5]\d\d|[1-5]XX|default)$/, `${label} response ${status}`);
          assert.equal(typeof operation.responses[status]!.description, 'string', `${label} ${status} has a description`);
        }
        for (const name of [...path.matchAll(/\{([^}]+)\}/g)].map((match) => match[1])) {
          assert.ok(operation.parameters?.some((parameter) => parameter.in === 'path' && parameter.name === name && parameter.required === true), `${label}: path parameter ${name}`);
        }
        for (const parameter of operation.parameters ?? []) assert.ok(['query', 'header', 'path', 'cookie'].includes(parameter.in), `${label}: ${parameter.name} in ${parameter.in}`);
        for (const requirement of (operation.security ?? []) as Json[]) {
          for (const scheme of Object.keys(requirement)) assert.ok(components.securitySchemes[scheme], `${label}: scheme ${scheme}`);
        }
        for (const tag of operation.tags ?? []) assert.ok(tags.has(tag), `${label}: tag ${tag} is declared`);
        assert.ok(!Object.keys(operation).some((key) => key.startsWith('x-pledge')), `${label}: no internal note left`);
      }
    });
  });
}
