import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createTestVault, type TestVault } from '../../test/support/vault.js';
import { loadPolicyText, requirePolicy } from '../policy/policy.load.js';
import type { Actor } from '../staff/permissions.js';
import { DatasetsService, type FoundRow } from './datasets.service.js';
import { readFileSync } from 'node:fs';

const SECRET = 'a-long-random-signing-secret-for-tests';
const actor: Actor = { type: 'system', id: 'test' };

/** The CRM of the example: one HTTP datastore with contacts and notes. */
const POLICY = readFileSync('examples/shop/pledge.yaml', 'utf8').replace(
  'datasets:\n',
  `datasets:
  - id: crm
    connection: { env: CRM_URL, secret_env: CRM_SECRET, timeout_seconds: 1 }
    collections:
      - name: contacts
        primary_key: [id]
        timestamp: created_at
        fields:
          - { name: email, category: user.contact.email, identity: email, erase: delete_row }
          - { name: first_name, category: user.name.first }
      - name: notes
        primary_key: [id]
        references:
          - { field: contact_id, to: contacts.id }
        fields:
          - { name: text, category: user.content.communications }
`,
);

interface Call {
  path: string;
  body: Record<string, unknown>;
}

/** A company endpoint following docs/datasets.md: checks the signature, pages find results. */
function companyEndpoint(calls: Call[], behaviour: { hang?: boolean } = {}): Server {
  return createServer((request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      if (behaviour.hang) return;
      const body = Buffer.concat(chunks).toString('utf8');
      const timestamp = String(request.headers['x-pledge-timestamp']);
      const expected = `v1=${createHmac('sha256', SECRET).update(`${timestamp}.${body}`).digest('hex')}`;
      const given = String(request.headers['x-pledge-signature'] ?? '');
      const fresh = Math.abs(Date.now() / 1000 - Number(timestamp)) < 300;
      if (!fresh || given.length !== expected.length || !timingSafeEqual(Buffer.from(given), Buffer.from(expected))) {
        response.writeHead(401).end();
        return;
      }
      const parsed = JSON.parse(body) as Record<string, unknown>;
      calls.push({ path: request.url!, body: parsed });
      const send = (value: unknown) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(value));
      switch (request.url) {
        case '/pledge/find':
          if (parsed.cursor === null) {
            send({ rows: [{ collection: 'contacts', primary_key: { id: 7 }, fields: { email: 'jane@crm.example', first_name: 'Jane', password_hash: 'not declared' } }], cursor: 'page-2' });
          } else {
            send({ rows: [{ collection: 'notes', primary_key: { id: 70 }, fields: { text: 'Called about the invoice' } }], cursor: null });
          }
          return;
        case '/pledge/erase':
          send({ changed: [{ collection: 'contacts', primary_key: { id: 7 }, action: 'delete', fields: ['email', 'first_name'] }], kept: [] });
          return;
        case '/pledge/correct':
          send({ updated: [{ collection: 'contacts', primary_key: { id: 7 }, fields: ['first_name'] }] });
          return;
        case '/pledge/expire':
          send({ rows: 3 });
          return;
        default:
          response.writeHead(404).end();
      }
    });
  });
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('HTTP datastores', () => {
  let vault: TestVault;
  let server: Server;
  let host: string;
  const calls: Call[] = [];
  const policy = requirePolicy(loadPolicyText(POLICY, 'pledge.yaml'));
  const service = (env: Record<string, string>, hosts: string[]) => new DatasetsService({ policy, env, audit: vault.audit, clock: vault.clock, httpHosts: hosts });

  before(async () => {
    vault = await createTestVault('sqlite', { policy });
    server = companyEndpoint(calls);
    host = await listen(server);
  });
  after(async () => {
    server.close();
    await vault.close();
  });

  test('find, erase, correct and expire speak the signed protocol; only declared fields come back', async () => {
    const datasets = service({ CRM_URL: `http://${host}/pledge`, CRM_SECRET: SECRET }, [host]);
    const rows: FoundRow[] = [];
    const summary = await datasets.find('crm', [{ kind: 'email', value: 'jane@crm.example' }], (row) => {
      rows.push(row);
    });
    assert.deepEqual(summary, { datastore: 'crm', rows: 2, collections: { contacts: 1, notes: 1 } });
    assert.deepEqual(rows[0], { datastore: 'crm', collection: 'contacts', primaryKey: { id: 7 }, fields: [{ name: 'email', category: 'user.contact.email', value: 'jane@crm.example' }, { name: 'first_name', category: 'user.name.first', value: 'Jane' }] });
    assert.deepEqual(calls.map((call) => [call.path, call.body.cursor]), [['/pledge/find', null], ['/pledge/find', 'page-2']]);

    const erased = await datasets.erase('crm', [{ kind: 'email', value: 'jane@crm.example' }], { dryRun: false, actor });
    assert.deepEqual(erased.counts, { updated: 0, deleted: 1, kept: 0 });
    const eraseCall = calls.find((call) => call.path === '/pledge/erase')!;
    assert.equal(eraseCall.body.dry_run, false);
    assert.deepEqual((eraseCall.body.collections as Array<{ name: string }>).map((collection) => collection.name), ['contacts', 'notes']);

    const corrected = await datasets.correct('crm', [{ kind: 'email', value: 'jane@crm.example' }], { 'user.name.first': 'Janet' }, { actor });
    assert.deepEqual(corrected.updated, [{ collection: 'contacts', primaryKey: { id: 7 }, fields: ['first_name'] }]);
    assert.deepEqual(calls.find((call) => call.path === '/pledge/correct')!.body.corrections, [{ collection: 'contacts', field: 'first_name', value: 'Janet' }]);

    assert.deepEqual(await datasets.expire('crm', 'contacts', { before: new Date('2025-01-01T00:00:00Z'), action: 'delete', dryRun: true }), { rows: 3, skipped: 0, referenced: 0 });
    const audit = await vault.audit.list({ limit: 500 });
    assert.ok(!JSON.stringify(audit.entries).includes('jane@'), 'no personal data in the audit log');
  });

  test('a wrong secret, a host off the allow-list and a silent endpoint are refused clearly', async () => {
    const wrongSecret = service({ CRM_URL: `http://${host}/pledge`, CRM_SECRET: 'another-secret' }, [host]);
    await assert.rejects(wrongSecret.find('crm', [{ kind: 'email', value: 'jane@crm.example' }], () => {}), { code: 'dataset_protocol_error' });

    const notAllowed = service({ CRM_URL: `http://${host}/pledge`, CRM_SECRET: SECRET }, ['crm.example.com']);
    await assert.rejects(notAllowed.find('crm', [{ kind: 'email', value: 'jane@crm.example' }], () => {}), { code: 'dataset_host_not_allowed' });

    const plainHttp = service({ CRM_URL: 'http://crm.example.com/pledge', CRM_SECRET: SECRET }, ['crm.example.com']);
    await assert.rejects(plainHttp.find('crm', [{ kind: 'email', value: 'jane@crm.example' }], () => {}), { code: 'dataset_not_configured' });

    const noSecret = service({ CRM_URL: `http://${host}/pledge` }, [host]);
    await assert.rejects(noSecret.find('crm', [{ kind: 'email', value: 'jane@crm.example' }], () => {}), (error: Error & { code?: string }) => error.code === 'dataset_not_configured' && error.message.includes('CRM_SECRET'));

    const silent = companyEndpoint([], { hang: true });
    const silentHost = await listen(silent);
    try {
      const slow = service({ CRM_URL: `http://${silentHost}/pledge`, CRM_SECRET: SECRET }, [silentHost]);
      // The endpoint never answers: the declared timeout (1 s) ends the wait.
      await assert.rejects(slow.erase('crm', [{ kind: 'email', value: 'jane@crm.example' }], { dryRun: false, actor }), { code: 'dataset_unavailable' });
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });
});
