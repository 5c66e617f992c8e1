import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createTestApp, type TestApp } from '../../test/support/app.js';
import { temporaryDirectory, testDialects } from '../../test/support/databases.js';
import { evidenceFrom, signalsFrom, userAgentFamily } from './consent.evidence.js';

const system = { type: 'system' as const, id: 'test' };
const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0';

/**
 * The demo policy with what the consent tests need besides: more marketing topics, an affiliate
 * the person can opt out of that also serves marketing (so opting out of the sharing must leave
 * the company's own marketing alone), a purpose that is only that sharing, and Do Not Track
 * honoured for analytics.
 */
function consentPolicyText(): string {
  const text = readFileSync('examples/demo/pledge.yaml', 'utf8')
    .replace(
      '  - id: legal_compliance\n',
      `  - id: affiliate_sharing
    name: Sharing with our sister shops
    description: Share your name and email with the other shops of our group, unless you object.
    legal_basis: legitimate_interest
    categories: [user.name, user.contact.email]
    disclosure: true
  - id: legal_compliance
`,
    )
    .replace(
      'sharing:\n  sells_personal_data: false',
      `  - id: sister_shops
    name: Our sister shops
    role: affiliate
    purposes: [affiliate_sharing, marketing]
    categories: [user.name, user.contact.email]
    opt_out: true

sharing:
  sells_personal_data: false`,
    )
    .replace(
      '    description: New releases and offers, at most twice a month.\n',
      `    description: New releases and offers, at most twice a month.
  - id: product_news
    name: Product news
    kind: marketing
    purpose: marketing
    channels: [email]
  - id: promotions
    name: Promotions
    kind: marketing
    purpose: marketing
    channels: [email]
`,
    )
    .replace('  dnt:\n    honoured: false', '  dnt:\n    honoured: true\n    opts_out_of: [analytics]');
  assert.ok(text.includes('sister_shops') && text.includes('product_news') && text.includes('opts_out_of: [analytics]'), 'the demo policy changed: update the consent test policy');
  return text;
}

export function writeConsentPolicy(directory: string): string {
  const file = path.join(directory, 'consent-policy.yaml');
  writeFileSync(file, consentPolicyText());
  return file;
}

test('signals: exactly "1" counts, as the GPC specification says', () => {
  assert.deepEqual(signalsFrom({ 'sec-gpc': '1' }), { gpc: true, dnt: false });
  for (const value of ['true', 'yes', ' 1', '0', '']) assert.equal(signalsFrom({ 'sec-gpc': value }).gpc, false, JSON.stringify(value));
  assert.equal(signalsFrom({ dnt: '1' }).dnt, true);
});

test('evidence: browser family only, country only from the configured header', () => {
  assert.equal(userAgentFamily(FIREFOX), 'Firefox');
  assert.equal(userAgentFamily('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36'), 'Chrome');
  assert.equal(userAgentFamily('Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0'), 'Edge');
  assert.equal(userAgentFamily('Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15'), 'Safari');
  assert.equal(userAgentFamily('curl/8.0'), 'other');
  assert.equal(userAgentFamily(undefined), null);
  assert.deepEqual(evidenceFrom({ 'cf-ipcountry': 'fr', 'x-forwarded-for': '203.0.113.9' }, 'CF-IPCountry', 'b2'), { country: 'FR', uaFamily: null, bannerVersion: 'b2' });
  assert.equal(evidenceFrom({ 'cf-ipcountry': 'FR' }, undefined).country, null, 'no header configured: no country');
  assert.equal(evidenceFrom({ 'cf-ipcountry': '203.0.113.9' }, 'cf-ipcountry').country, null, 'only a country code is kept');
});

for (const dialect of testDialects()) {
  describe(`consent ledger over HTTP on ${dialect}`, () => {
    let testApp: TestApp;
    let directory: { path: string; remove(): void };
    let shopKey: string;
    let consentKey: string;

    before(async () => {
      directory = temporaryDirectory('pledge-consent-');
      testApp = await createTestApp(dialect, { policy: writeConsentPolicy(directory.path) }, { PLEDGE_COUNTRY_HEADER: 'CF-IPCountry' });
      shopKey = (await testApp.app.staff.createApiKey(system, { name: 'shop', permissions: ['subjects:read', 'subjects:write', 'data:read', 'data:write'], purposes: 'all' })).key;
      consentKey = (await testApp.app.staff.createApiKey(system, { name: 'banner relay', permissions: ['consent:read', 'consent:write'], purposes: 'all' })).key;
    });
    after(async () => {
      await testApp.cleanup();
      directory.remove();
    });

    const call = (method: 'GET' | 'POST' | 'PATCH', url: string, options: { key?: string; body?: unknown; headers?: Record<string, string> } = {}) =>
      testApp.app.http.inject({
        method,
        url,
        headers: { authorization: `Bearer ${options.key ?? consentKey}`, ...options.headers },
        ...(options.body !== undefined ? { payload: options.body as object } : {}),
      });

    let counter = 0;
    const newSubject = async (): Promise<string> => {
      const response = await call('POST', '/v1/subjects', {
        key: shopKey,
        body: { kinds: ['customer'], identities: [{ kind: 'email', value: `person${++counter}@example.com` }], data: { purpose: 'account', source: 'person', fields: { 'user.name': 'Grace Hopper', 'user.contact.email': `person${counter}@example.com` } } },
      });
      assert.equal(response.statusCode, 201, response.body);
      return response.json().id as string;
    };
    const record = (holder: string, choices: unknown[], extra: { headers?: Record<string, string>; source?: string; bannerVersion?: string } = {}) =>
      call('POST', '/v1/consent/events', { body: { holder, choices, ...(extra.source ? { source: extra.source } : {}), ...(extra.bannerVersion ? { bannerVersion: extra.bannerVersion } : {}) }, ...(extra.headers ? { headers: extra.headers } : {}) });
    const readData = (id: string, purpose: string) => call('GET', `/v1/subjects/${id}/data?purpose=${purpose}`, { key: shopKey });
    const decision = async (holder: string, purpose: string, headers: Record<string, string> = {}) => {
      const response = await call('GET', `/v1/${holder.startsWith('sub_') ? 'subjects' : 'visitors'}/${holder}/consent/${purpose}`, { headers });
      assert.equal(response.statusCode, 200, response.body);
      return response.json() as { allowed: boolean; reason: string; decision: string | null };
    };
    const history = async (holder: string) => {
      const response = await call('GET', `/v1/consent/events?holder=${holder}`);
      assert.equal(response.statusCode, 200, response.body);
      return response.json().events as Array<{ target: string; kind: string; action: string; source: string; mergedFrom: string | null; policyVersion: string; receiptId: string; evidence: Record<string, string | null> }>;
    };

    test("the vault's purpose-checked read follows the ledger: refused, granted, withdrawn", async () => {
      const id = await newSubject();
      const refused = await readData(id, 'marketing');
      assert.equal(refused.statusCode, 403);
      assert.equal(refused.json().reason, 'consent');

      const granted = await record(id, [{ purpose: 'marketing', action: 'granted' }], { source: 'banner', bannerVersion: '2026.1', headers: { 'user-agent': FIREFOX, 'cf-ipcountry': 'DE' } });
      assert.equal(granted.statusCode, 201, granted.body);
      assert.match(granted.json().receiptId, /^[0-9a-f-]{36}$/);
      const allowed = await readData(id, 'marketing');
      assert.equal(allowed.statusCode, 200, allowed.body);
      assert.equal(allowed.json().fields['user.name'].value, 'Grace Hopper');

      assert.equal((await record(id, [{ purpose: 'marketing', action: 'withdrawn' }])).statusCode, 201);
      const again = await readData(id, 'marketing');
      assert.equal(again.statusCode, 403);
      assert.match(again.json().detail, /withdrew/);

      const events = await history(id);
      assert.deepEqual(events.map((event) => `${event.target} ${event.action} ${event.source}`), ['marketing granted banner', 'marketing withdrawn api']);
      assert.deepEqual(events[0]!.evidence, { country: 'DE', uaFamily: 'Firefox', bannerVersion: '2026.1' });
      assert.equal(events[0]!.policyVersion, '1.0');
      assert.equal((await decision(id, 'marketing')).decision, 'withdrawn');
    });

    test('opt-out purposes apply until refused; necessary purposes and legal obligations cannot be refused', async () => {
      const id = await newSubject();
      assert.equal((await decision(id, 'analytics')).allowed, true);
      assert.equal((await record(id, [{ purpose: 'analytics', action: 'denied' }])).statusCode, 201);
      assert.equal((await decision(id, 'analytics')).allowed, false);

      for (const purpose of ['security', 'legal_compliance', 'account']) {
        const refused = await record(id, [{ purpose: 'marketing', action: 'granted' }, { purpose, action: 'withdrawn' }]);
        assert.equal(refused.statusCode, 422, purpose);
        assert.equal(refused.json().code, 'consent_not_optional');
        assert.equal((await decision(id, purpose)).allowed, true);
      }
      assert.equal((await decision(id, 'marketing')).allowed, false, 'nothing of a refused request was stored');
      assert.equal((await history(id)).length, 1);
    });

    test('a necessary purpose, a legal obligation or service mail cannot be granted either: 422, no event, no receipt', async () => {
      const id = await newSubject();
      for (const choice of [{ purpose: 'security', action: 'granted' }, { purpose: 'legal_compliance', action: 'granted' }, { topic: 'order_updates', action: 'granted' }]) {
        const refused = await record(id, [{ purpose: 'analytics', action: 'denied' }, choice]);
        assert.equal(refused.statusCode, 422, JSON.stringify(choice));
        assert.equal(refused.headers['content-type'], 'application/problem+json; charset=utf-8');
        assert.equal(refused.json().code, 'consent_not_optional');
        assert.equal(refused.json().target, choice.purpose ? `purpose:${choice.purpose}` : `topic:${choice.topic}`);
      }
      const patched = await call('PATCH', `/v1/subjects/${id}/preferences`, { body: { purposes: { security: true } } });
      assert.equal(patched.statusCode, 422);
      assert.equal(patched.json().code, 'consent_not_optional');
      assert.deepEqual(await history(id), [], 'nothing was stored, so no receipt was issued');
      assert.equal((await decision(id, 'security')).decision, null);
    });

    test('withdrawn without an earlier grant is recorded (imported history), and refuses the purpose', async () => {
      const id = await newSubject();
      const withdrawn = await record(id, [{ purpose: 'analytics', action: 'withdrawn' }], { source: 'import' });
      assert.equal(withdrawn.statusCode, 201, withdrawn.body);
      const state = await decision(id, 'analytics');
      assert.equal(state.allowed, false);
      assert.equal(state.decision, 'withdrawn');
    });

    test('bad input: unknown purpose or topic, contradictory choices — precise problem, nothing stored', async () => {
      const id = await newSubject();
      const unknown = await record(id, [{ purpose: 'marketing', action: 'granted' }, { purpose: 'telepathy', action: 'granted' }]);
      assert.equal(unknown.statusCode, 422);
      assert.equal(unknown.headers['content-type'], 'application/problem+json; charset=utf-8');
      assert.equal(unknown.json().code, 'unknown_purpose');
      assert.match(unknown.json().detail, /telepathy/);

      const topic = await record(id, [{ topic: 'horoscope', action: 'granted' }]);
      assert.equal(topic.json().code, 'unknown_topic');

      const contradictory = await record(id, [{ purpose: 'marketing', action: 'granted' }, { purpose: 'analytics', action: 'granted' }, { purpose: 'marketing', action: 'denied' }]);
      assert.equal(contradictory.statusCode, 422);
      assert.equal(contradictory.json().code, 'consent_conflict');
      assert.equal(contradictory.json().target, 'purpose:marketing');

      const both = await record(id, [{ purpose: 'marketing', topic: 'newsletter', action: 'granted' }]);
      assert.equal(both.statusCode, 400);
      const gpcSource = await record(id, [{ purpose: 'marketing', action: 'granted' }], { source: 'gpc' });
      assert.equal(gpcSource.statusCode, 400, 'signals come from headers, never from a body');
      const unknownSubject = await record('sub_00000000000000000000000000', [{ purpose: 'marketing', action: 'granted' }]);
      assert.equal(unknownSubject.statusCode, 404);

      assert.deepEqual(await history(id), []);
      const duplicates = await record(id, [{ purpose: 'marketing', action: 'granted' }, { purpose: 'marketing', action: 'granted' }]);
      assert.equal(duplicates.statusCode, 201);
      assert.equal(duplicates.json().events.length, 1, 'the same choice twice is one event');
    });

    test('GPC opts out of the purposes the policy names, once, and an explicit opt-in after it stands', async () => {
      const id = await newSubject();
      await record(id, [{ purpose: 'marketing', action: 'granted' }]);
      assert.equal((await decision(id, 'marketing', { 'sec-gpc': 'true' })).allowed, true, 'only "1" is the signal');

      const first = await decision(id, 'marketing', { 'sec-gpc': '1' });
      assert.equal(first.allowed, false, 'a signal seen after a grant opts out');
      assert.equal(first.decision, 'opted_out_by_signal');
      assert.equal((await decision(id, 'analytics')).allowed, false);
      assert.equal((await readData(id, 'marketing')).statusCode, 403);

      await decision(id, 'marketing', { 'sec-gpc': '1' });
      let events = await history(id);
      assert.deepEqual(events.filter((event) => event.source === 'gpc').map((event) => `${event.target} ${event.action}`).sort(), ['analytics opted_out_by_signal', 'marketing opted_out_by_signal'], 'recorded once per purpose');

      // The person opts in again, explicitly, while their browser keeps sending the signal.
      assert.equal((await record(id, [{ purpose: 'marketing', action: 'granted' }], { headers: { 'sec-gpc': '1' } })).statusCode, 201);
      assert.equal((await decision(id, 'marketing', { 'sec-gpc': '1' })).allowed, true, 'the later explicit opt-in is not overridden');
      assert.equal((await readData(id, 'marketing')).statusCode, 200);
      events = await history(id);
      assert.equal(events.filter((event) => event.source === 'gpc').length, 2);

      const receipt = await call('GET', `/v1/consent/receipts/${events.find((event) => event.source === 'gpc')!.receiptId}`);
      assert.equal(receipt.json().collectionMethod, 'Global Privacy Control browser signal');
    });

    test("a staff member's own browser signal opts nobody out: it is theirs, not the person's", async () => {
      const id = await newSubject();
      await record(id, [{ purpose: 'marketing', action: 'granted' }]);
      const agent = { type: 'staff' as const, id: 'stf_support', role: 'support' as const };
      const applied = await testApp.app.consent.applySignals(agent, id, { gpc: true, dnt: true });
      assert.deepEqual(applied.events, []);
      assert.equal((await decision(id, 'marketing')).allowed, true);
      assert.deepEqual((await history(id)).filter((event) => event.source === 'gpc' || event.source === 'dnt'), []);
    });

    test('Sec-GPC on any route that names a subject or a visitor is applied before the route, as on the consent routes', async () => {
      const gpc = { 'sec-gpc': '1' };
      const signalled = async (holder: string) => (await history(holder)).filter((event) => event.source === 'gpc').map((event) => `${event.target} ${event.action}`).sort();

      // Without the header: the opt-out purpose is read, nothing is recorded.
      const plain = await newSubject();
      assert.equal((await readData(plain, 'analytics')).statusCode, 200);
      assert.deepEqual(await history(plain), []);

      const reader = await newSubject();
      const refused = await call('GET', `/v1/subjects/${reader}/data?purpose=analytics`, { key: shopKey, headers: gpc });
      assert.equal(refused.statusCode, 403, refused.body);
      assert.equal(refused.json().code, 'purpose_not_permitted');
      assert.equal(refused.json().reason, 'consent');
      assert.deepEqual(await signalled(reader), ['analytics opted_out_by_signal', 'marketing opted_out_by_signal']);

      const looked = await newSubject();
      const summary = await call('GET', `/v1/subjects/${looked}`, { key: shopKey, headers: gpc });
      assert.equal(summary.statusCode, 200, summary.body);
      assert.deepEqual(await signalled(looked), ['analytics opted_out_by_signal', 'marketing opted_out_by_signal']);
      await call('GET', `/v1/subjects/${looked}`, { key: shopKey, headers: gpc });
      assert.equal((await signalled(looked)).length, 2, 'once per purpose, as everywhere');

      const visitor = (await call('POST', '/v1/visitors')).json().id as string;
      const account = await newSubject();
      const identified = await call('POST', `/v1/visitors/${visitor}/identify`, { body: { subjectId: account }, headers: gpc });
      assert.equal(identified.statusCode, 200, identified.body);
      assert.deepEqual(await signalled(visitor), ['analytics opted_out_by_signal', 'marketing opted_out_by_signal']);
      assert.deepEqual(await signalled(account), ['analytics opted_out_by_signal', 'marketing opted_out_by_signal']);
      assert.equal((await decision(account, 'analytics')).allowed, false);

      const mailer = (await testApp.app.staff.createApiKey(system, { name: 'mailer', permissions: ['comms:write'], purposes: 'all' })).key;
      const recipient = await newSubject();
      const queued = await call('POST', '/v1/outbox', { key: mailer, headers: gpc, body: { topic: 'order_updates', subjectId: recipient, subject: 's', body: 'b', idempotencyKey: 'gpc-1' } });
      assert.equal(queued.statusCode, 201, queued.body);
      assert.deepEqual(await signalled(recipient), ['analytics opted_out_by_signal', 'marketing opted_out_by_signal'], 'a subject named in the body counts too');

      const unknown = await call('GET', '/v1/subjects/sub_00000000000000000000000000', { key: shopKey, headers: gpc });
      assert.equal(unknown.statusCode, 404, 'the route answers for an unknown subject');
      assert.equal(unknown.json().code, 'subject_not_found');
    });

    test('DNT applies only where the policy honours it, to the purposes it names', async () => {
      const id = await newSubject();
      await decision(id, 'analytics', { dnt: '1' });
      assert.equal((await decision(id, 'analytics')).decision, 'opted_out_by_signal');
      assert.equal((await decision(id, 'marketing')).decision, null, 'DNT names only analytics here');
      assert.deepEqual((await history(id)).map((event) => `${event.target} ${event.source}`), ['analytics dnt']);
    });

    test("a visitor's choices join the subject's when it identifies: the later decision wins per purpose", async () => {
      const created = await call('POST', '/v1/visitors');
      assert.equal(created.statusCode, 201);
      const visitor = created.json().id as string;
      assert.match(visitor, /^vis_[0-9a-hjkmnp-tv-z]{26}$/);
      const id = await newSubject();

      // Older choices on the account, newer ones by the visitor — except analytics, decided last on the account.
      await record(id, [{ purpose: 'marketing', action: 'denied' }, { topic: 'promotions', action: 'denied' }]);
      await new Promise((resolve) => setTimeout(resolve, 5));
      await record(visitor, [{ purpose: 'marketing', action: 'granted' }, { purpose: 'analytics', action: 'denied' }], { source: 'banner', bannerVersion: 'v7', headers: { 'user-agent': FIREFOX, 'cf-ipcountry': 'FR' } });
      await new Promise((resolve) => setTimeout(resolve, 5));
      await record(id, [{ purpose: 'analytics', action: 'granted' }]);
      assert.equal((await decision(visitor, 'marketing')).allowed, true);

      const merged = await call('POST', `/v1/visitors/${visitor}/identify`, { body: { subjectId: id } });
      assert.equal(merged.statusCode, 200, merged.body);
      assert.equal(merged.json().merged, 1);
      assert.equal((await decision(id, 'marketing')).allowed, true, "the visitor's later grant wins");
      assert.equal((await decision(id, 'analytics')).allowed, true, "the account's later grant wins");
      const overview = (await call('GET', `/v1/subjects/${id}/consent`)).json();
      assert.equal(overview.topics.find((topic: { id: string }) => topic.id === 'promotions').subscribed, false, 'untouched choices stay');

      const copied = (await history(id)).filter((event) => event.mergedFrom === visitor);
      assert.equal(copied.length, 1);
      assert.deepEqual(copied[0]!.evidence, { country: 'FR', uaFamily: 'Firefox', bannerVersion: 'v7' });
      assert.equal(copied[0]!.source, 'banner');

      const again = await call('POST', `/v1/visitors/${visitor}/identify`, { body: { subjectId: id } });
      assert.equal(again.json().merged, 0, 'identifying twice takes over nothing new');
    });

    test('a visitor identified as one subject cannot be identified as another: 409, nothing copied; the same subject again is a no-op', async () => {
      const visitor = (await call('POST', '/v1/visitors')).json().id as string;
      await record(visitor, [{ purpose: 'marketing', action: 'granted' }], { source: 'banner' });
      const first = await newSubject();
      const second = await newSubject();
      assert.equal((await call('POST', `/v1/visitors/${visitor}/identify`, { body: { subjectId: first } })).json().merged, 1);

      const other = await call('POST', `/v1/visitors/${visitor}/identify`, { body: { subjectId: second } });
      assert.equal(other.statusCode, 409, other.body);
      assert.equal(other.headers['content-type'], 'application/problem+json; charset=utf-8');
      assert.equal(other.json().code, 'visitor_already_identified');
      assert.ok(!other.body.includes(first), 'the problem does not name the other subject');
      assert.deepEqual(await history(second), [], "the first person's choices were not copied");
      assert.equal((await decision(second, 'marketing')).allowed, false);

      const same = await call('POST', `/v1/visitors/${visitor}/identify`, { body: { subjectId: first } });
      assert.equal(same.statusCode, 200, same.body);
      assert.equal(same.json().merged, 0);

      // A visitor with no choice yet is tied to its subject all the same.
      const blank = (await call('POST', '/v1/visitors')).json().id as string;
      assert.equal((await call('POST', `/v1/visitors/${blank}/identify`, { body: { subjectId: first } })).statusCode, 200);
      await record(blank, [{ purpose: 'analytics', action: 'denied' }]);
      assert.equal((await call('POST', `/v1/visitors/${blank}/identify`, { body: { subjectId: second } })).json().code, 'visitor_already_identified');
      assert.deepEqual(await history(second), []);
    });

    test('a signal a visitor already sent is not applied again over the subject\'s later opt-in', async () => {
      const visitor = (await call('POST', '/v1/visitors')).json().id as string;
      await decision(visitor, 'marketing', { 'sec-gpc': '1' });
      const id = await newSubject();
      await new Promise((resolve) => setTimeout(resolve, 5));
      await record(id, [{ purpose: 'marketing', action: 'granted' }]);
      await call('POST', `/v1/visitors/${visitor}/identify`, { body: { subjectId: id } });
      assert.equal((await decision(id, 'marketing', { 'sec-gpc': '1' })).allowed, true);
    });

    test('receipts follow the Kantara Consent Receipt v1.1 format, without personal data', async () => {
      const id = await newSubject();
      const recorded = await record(id, [{ purpose: 'marketing', action: 'granted' }, { topic: 'newsletter', action: 'granted' }, { purpose: 'affiliate_sharing', action: 'denied' }], { source: 'privacy_center' });
      const response = await call('GET', `/v1/consent/receipts/${recorded.json().receiptId}`);
      assert.equal(response.statusCode, 200, response.body);
      const receipt = response.json();
      assert.deepEqual(Object.keys(receipt).sort(), ['collectionMethod', 'consentReceiptID', 'consentTimestamp', 'jurisdiction', 'language', 'piiControllers', 'piiPrincipalId', 'policyUrl', 'sensitive', 'services', 'spiCat', 'version'].sort());
      assert.equal(receipt.version, 'KI-CR-v1.1.0');
      assert.equal(receipt.jurisdiction, 'US');
      assert.ok(Number.isInteger(receipt.consentTimestamp) && Math.abs(receipt.consentTimestamp - Date.now() / 1000) < 60, 'seconds since the epoch');
      assert.equal(receipt.collectionMethod, 'privacy center');
      assert.equal(receipt.consentReceiptID, recorded.json().receiptId);
      assert.equal(receipt.language, 'en');
      assert.equal(receipt.piiPrincipalId, id);
      assert.deepEqual(receipt.piiControllers, [{ piiController: 'Northwind Books Ltd.', onBehalf: false, contact: 'Northwind Books privacy contact', address: '12 Harbour Street, Portland, ME 04101, USA', email: 'privacy@books.example.com', phone: '', piiControllerUrl: 'https://books.example.com' }]);
      assert.match(receipt.policyUrl, /^http:\/\/.+\/policy$/);
      assert.equal(receipt.services.length, 1);
      assert.equal(receipt.services[0].service, 'Northwind Books');
      const [marketing, newsletter, affiliates] = receipt.services[0].purposes;
      for (const purpose of receipt.services[0].purposes) {
        for (const key of ['purpose', 'purposeCategory', 'consentType', 'piiCategory', 'primaryPurpose', 'termination', 'thirdPartyDisclosure']) assert.ok(key in purpose, key);
      }
      assert.deepEqual(marketing.purposeCategory, ['Newsletter and offers']);
      assert.equal(marketing.consentType, 'EXPLICIT');
      assert.equal(marketing.decision, 'granted');
      assert.ok(marketing.piiCategory.length > 0);
      assert.equal(marketing.primaryPurpose, false);
      assert.match(newsletter.purpose, /^Newsletter: /);
      assert.equal(affiliates.thirdPartyDisclosure, true);
      assert.equal(affiliates.thirdPartyName, 'Our sister shops');
      assert.equal(affiliates.consentType, 'IMPLICIT');
      assert.equal(affiliates.decision, 'denied');
      assert.equal(receipt.sensitive, false);
      assert.deepEqual(receipt.spiCat, []);
      assert.ok(!response.body.includes(`person${counter}@example.com`), 'no email of the person in the receipt');

      const missing = await call('GET', '/v1/consent/receipts/00000000-0000-4000-8000-000000000000');
      assert.equal(missing.json().code, 'receipt_not_found');
    });

    test('preferences: per purpose, per topic, affiliate sharing and profiling; contradictions refused', async () => {
      const id = await newSubject();
      const initial = await call('GET', `/v1/subjects/${id}/preferences`);
      assert.equal(initial.statusCode, 200, initial.body);
      assert.deepEqual(initial.json().sharing.affiliates, { recipients: ['sister_shops'], purposes: ['affiliate_sharing', 'marketing'], optedOut: false });
      assert.deepEqual(initial.json().profiling, { purposes: ['marketing'], optedOut: true }, 'marketing is opt-in: not allowed before consent');
      assert.deepEqual(initial.json().topics.map((topic: { id: string; receives: boolean }) => `${topic.id}:${topic.receives}`), ['order_updates:true', 'newsletter:false', 'product_news:false', 'promotions:false']);

      const set = await call('PATCH', `/v1/subjects/${id}/preferences`, { body: { purposes: { marketing: true }, topics: { promotions: false }, sharingWithAffiliates: false } });
      assert.equal(set.statusCode, 200, set.body);
      const after = set.json();
      assert.deepEqual(after.topics.map((topic: { id: string; receives: boolean }) => `${topic.id}:${topic.receives}`), ['order_updates:true', 'newsletter:true', 'product_news:true', 'promotions:false']);
      assert.equal(after.sharing.affiliates.optedOut, true);
      assert.equal(after.profiling.optedOut, false, 'marketing, which the affiliate also serves, stays allowed');
      const sharing = await decision(id, 'affiliate_sharing');
      assert.equal(sharing.decision, null, 'the purpose itself was not decided');
      assert.equal(sharing.allowed, false, 'but it is only sharing with the affiliate the person opted out of');

      const contradiction = await call('PATCH', `/v1/subjects/${id}/preferences`, { body: { profiling: false, purposes: { marketing: true } } });
      assert.equal(contradiction.statusCode, 422);
      assert.equal(contradiction.json().code, 'consent_conflict');
      assert.match(contradiction.json().detail, /profiling/);
      const service = await call('PATCH', `/v1/subjects/${id}/preferences`, { body: { topics: { order_updates: false } } });
      assert.equal(service.json().code, 'consent_not_optional');
      const unknownTopic = await call('PATCH', `/v1/subjects/${id}/preferences`, { body: { topics: { horoscope: false } } });
      assert.equal(unknownTopic.json().code, 'unknown_topic');

      const off = await call('PATCH', `/v1/subjects/${id}/preferences`, { body: { profiling: false } });
      assert.equal(off.json().profiling.optedOut, true);
      assert.equal((await decision(id, 'marketing')).decision, 'withdrawn', 'off after a grant is a withdrawal');
      assert.equal((await history(id)).length, 4);
    });

    const sharingWith = async (holder: string, recipient: string, purpose?: string, headers: Record<string, string> = {}) => {
      const response = await call('GET', `/v1/${holder.startsWith('sub_') ? 'subjects' : 'visitors'}/${holder}/sharing/${recipient}${purpose ? `?purpose=${purpose}` : ''}`, { headers });
      assert.equal(response.statusCode, 200, response.body);
      return response.json() as { holder: string; recipient: string; purpose: string | null; allowed: boolean; reason: string; purposes: string[]; decision: string | null; decidedAt: string | null };
    };
    type RecipientView = { id: string; name: string; role: string; purposes: string[]; optional: boolean; shares: boolean; decision: string | null; decidedAt: string | null };
    const sharingOverview = async (id: string) => {
      const response = await call('GET', `/v1/subjects/${id}/preferences`);
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json() as { sharing: { recipients: RecipientView[]; affiliates: { recipients: string[]; purposes: string[]; optedOut: boolean } }; purposes: Array<{ id: string; allowed: boolean }> };
      return { ...body.sharing, sisterShops: body.sharing.recipients.find((recipient) => recipient.id === 'sister_shops')!, allowed: new Map(body.purposes.map((purpose) => [purpose.id, purpose.allowed])) };
    };

    test("opting out of an affiliate stops sharing with it, not the company's own use of the purposes it also serves", async () => {
      const id = await newSubject();
      await record(id, [{ purpose: 'marketing', action: 'granted' }]);
      const refused = await record(id, [{ recipient: 'sister_shops', action: 'denied' }], { source: 'privacy_center' });
      assert.equal(refused.statusCode, 201, refused.body);
      assert.deepEqual(refused.json().events.map((event: { kind: string; target: string; action: string }) => `${event.kind} ${event.target} ${event.action}`), ['recipient sister_shops denied']);

      assert.equal((await decision(id, 'marketing')).allowed, true, 'the affiliate also serves marketing; our own marketing goes on');
      assert.equal((await readData(id, 'marketing')).statusCode, 200);
      assert.equal((await testApp.app.consent.mayUse(id, 'marketing')).allowed, true);

      // affiliate_sharing is only that sharing (disclosure: true), and its one recipient is refused.
      const sharing = await decision(id, 'affiliate_sharing');
      assert.equal(sharing.allowed, false);
      assert.equal(sharing.decision, null, 'nothing was decided on the purpose itself');
      assert.match(sharing.reason, /purpose "affiliate_sharing" is only sharing with its recipients, and the person opted out of sharing with recipient "sister_shops"/);
      assert.equal((await testApp.app.consent.decide(id, 'affiliate_sharing')).allowed, false, "the vault's seam says the same");
      const refusedRead = await readData(id, 'affiliate_sharing');
      assert.equal(refusedRead.statusCode, 403);
      assert.equal(refusedRead.json().reason, 'consent');

      const overview = await sharingOverview(id);
      assert.deepEqual(overview.sisterShops, { id: 'sister_shops', name: 'Our sister shops', role: 'affiliate', purposes: ['affiliate_sharing', 'marketing'], optional: true, shares: false, decision: 'denied', decidedAt: overview.sisterShops.decidedAt });
      assert.ok(overview.sisterShops.decidedAt);
      assert.deepEqual(overview.affiliates, { recipients: ['sister_shops'], purposes: ['affiliate_sharing', 'marketing'], optedOut: true });
      assert.equal(overview.allowed.get('affiliate_sharing'), false);
      assert.equal(overview.allowed.get('marketing'), true);
      const carrier = overview.recipients.find((recipient) => recipient.id === 'carrier')!;
      assert.deepEqual([carrier.optional, carrier.shares, carrier.decision], [false, true, null], 'a processor without opt_out shares while its purpose is allowed');

      // Sharing again: the purpose that is only sharing comes back.
      assert.equal((await record(id, [{ recipient: 'sister_shops', action: 'granted' }])).statusCode, 201);
      assert.equal((await decision(id, 'affiliate_sharing')).allowed, true);
      assert.equal((await readData(id, 'affiliate_sharing')).statusCode, 200);
      assert.equal((await sharingOverview(id)).sisterShops.shares, true);

      const events = await history(id);
      assert.deepEqual(events.map((event) => `${event.kind} ${event.target} ${event.action}`), ['purpose marketing granted', 'recipient sister_shops denied', 'recipient sister_shops granted']);
      const audit = (await testApp.app.audit.list({ targetId: id })).entries.filter((entry) => entry.action === 'consent.recorded');
      assert.ok(audit.some((entry) => JSON.stringify(entry.details.refused) === JSON.stringify(['recipient:sister_shops'])), 'the audit entry names the recipient');
    });

    test('choices about recipients: unknown, not refusable, contradictory — precise problem, nothing stored', async () => {
      const id = await newSubject();
      const unknown = await record(id, [{ purpose: 'marketing', action: 'granted' }, { recipient: 'nobody', action: 'denied' }]);
      assert.equal(unknown.statusCode, 422, unknown.body);
      assert.equal(unknown.headers['content-type'], 'application/problem+json; charset=utf-8');
      assert.equal(unknown.json().code, 'unknown_recipient');
      assert.match(unknown.json().detail, /recipient "nobody" is not declared/);

      const processor = await record(id, [{ recipient: 'carrier', action: 'denied' }]);
      assert.equal(processor.statusCode, 422);
      assert.equal(processor.json().code, 'consent_not_optional');
      assert.equal(processor.json().target, 'recipient:carrier');

      const contradictory = await record(id, [{ recipient: 'sister_shops', action: 'granted' }, { purpose: 'marketing', action: 'granted' }, { recipient: 'sister_shops', action: 'withdrawn' }]);
      assert.equal(contradictory.statusCode, 422);
      assert.equal(contradictory.json().code, 'consent_conflict');
      assert.equal(contradictory.json().target, 'recipient:sister_shops');

      assert.equal((await record(id, [{ purpose: 'marketing', recipient: 'sister_shops', action: 'granted' }])).statusCode, 400, 'one target per choice');
      for (const recipients of [{ nobody: false }, { carrier: false }]) {
        const patched = await call('PATCH', `/v1/subjects/${id}/preferences`, { body: { recipients } });
        assert.equal(patched.statusCode, 422, patched.body);
        assert.equal(patched.json().code, 'nobody' in recipients ? 'unknown_recipient' : 'consent_not_optional');
      }
      assert.deepEqual(await history(id), []);
    });

    test('preferences: sharingWithAffiliates and recipients record recipient choices; together they must agree', async () => {
      const id = await newSubject();
      const conflict = await call('PATCH', `/v1/subjects/${id}/preferences`, { body: { recipients: { sister_shops: true }, sharingWithAffiliates: false } });
      assert.equal(conflict.statusCode, 422, conflict.body);
      assert.equal(conflict.json().code, 'consent_conflict');
      assert.equal(conflict.json().target, 'recipient:sister_shops');
      assert.match(conflict.json().detail, /recipients\.sister_shops turns recipient "sister_shops" on but sharingWithAffiliates turns it off/);
      assert.deepEqual(await history(id), [], 'nothing stored');

      const agreeing = await call('PATCH', `/v1/subjects/${id}/preferences`, { body: { recipients: { sister_shops: true }, sharingWithAffiliates: true } });
      assert.equal(agreeing.statusCode, 200, agreeing.body);
      assert.equal(agreeing.json().sharing.recipients.find((recipient: RecipientView) => recipient.id === 'sister_shops').decision, 'granted');
      const off = await call('PATCH', `/v1/subjects/${id}/preferences`, { body: { sharingWithAffiliates: false } });
      assert.equal(off.json().sharing.affiliates.optedOut, true);
      assert.equal(off.json().sharing.recipients.find((recipient: RecipientView) => recipient.id === 'sister_shops').decision, 'withdrawn', 'off after a grant is a withdrawal');

      const fresh = await newSubject();
      const denied = await call('PATCH', `/v1/subjects/${fresh}/preferences`, { body: { recipients: { sister_shops: false } } });
      assert.equal(denied.statusCode, 200, denied.body);
      assert.equal(denied.json().sharing.recipients.find((recipient: RecipientView) => recipient.id === 'sister_shops').decision, 'denied');
      assert.deepEqual((await history(fresh)).map((event) => `${event.kind} ${event.target}`), ['recipient sister_shops']);
    });

    test('the sharing check: per recipient, with or without a purpose', async () => {
      const id = await newSubject();
      const before = await sharingWith(id, 'sister_shops');
      assert.deepEqual({ ...before, reason: undefined }, { holder: id, recipient: 'sister_shops', purpose: null, allowed: true, reason: undefined, purposes: ['affiliate_sharing'], decision: null, decidedAt: null }, 'marketing waits for consent');
      const marketing = await sharingWith(id, 'sister_shops', 'marketing');
      assert.equal(marketing.allowed, false);
      assert.match(marketing.reason, /purpose "marketing" needs the person's consent/);
      const other = await sharingWith(id, 'sister_shops', 'analytics');
      assert.equal(other.allowed, false);
      assert.match(other.reason, /recipient "sister_shops" does not receive data for purpose "analytics"/);

      await record(id, [{ purpose: 'marketing', action: 'granted' }]);
      assert.equal((await sharingWith(id, 'sister_shops', 'marketing')).allowed, true);
      assert.deepEqual((await sharingWith(id, 'sister_shops')).purposes, ['affiliate_sharing', 'marketing']);

      await record(id, [{ recipient: 'sister_shops', action: 'denied' }]);
      const refused = await sharingWith(id, 'sister_shops', 'marketing');
      assert.equal(refused.allowed, false);
      assert.match(refused.reason, /opted out of sharing with recipient "sister_shops"/);
      assert.deepEqual([refused.purposes, refused.decision], [[], 'denied']);
      assert.equal((await sharingWith(id, 'sister_shops')).allowed, false);
      assert.equal((await sharingWith(id, 'carrier', 'order_fulfilment')).allowed, true, 'a recipient without opt_out follows its purposes');

      for (const [url, status, code] of [
        [`/v1/subjects/${id}/sharing/nobody`, 422, 'unknown_recipient'],
        [`/v1/subjects/${id}/sharing/sister_shops?purpose=telepathy`, 422, 'unknown_purpose'],
        ['/v1/subjects/sub_00000000000000000000000000/sharing/sister_shops', 404, 'subject_not_found'],
      ] as const) {
        const response = await call('GET', url);
        assert.equal(response.statusCode, status, url);
        assert.equal(response.json().code, code, url);
      }
      const visitor = (await call('POST', '/v1/visitors')).json().id as string;
      assert.equal((await sharingWith(visitor, 'sister_shops', 'affiliate_sharing')).allowed, true, 'visitors are asked the same way');
      const reader = (await testApp.app.staff.createApiKey(system, { name: 'no consent', permissions: ['data:read'], purposes: 'all' })).key;
      assert.equal((await call('GET', `/v1/subjects/${id}/sharing/sister_shops`, { key: reader })).statusCode, 403, 'consent:read is needed');
    });

    test('Sec-GPC on the sharing check is applied and recorded first, as on the other routes', async () => {
      const id = await newSubject();
      await record(id, [{ purpose: 'marketing', action: 'granted' }]);
      const answer = await sharingWith(id, 'sister_shops', 'marketing', { 'sec-gpc': '1' });
      assert.equal(answer.allowed, false);
      assert.match(answer.reason, /browser privacy signal/);
      const signalled = (await history(id)).filter((event) => event.source === 'gpc').map((event) => `${event.target} ${event.action}`).sort();
      assert.deepEqual(signalled, ['analytics opted_out_by_signal', 'marketing opted_out_by_signal']);
      assert.deepEqual((await sharingWith(id, 'sister_shops')).purposes, ['affiliate_sharing'], 'the signal opts out of purposes, not of the recipient');
    });

    test('a read for a recipient: only what both the purpose and the recipient may have, refused once the person opts out, audited by recipient', async () => {
      const id = await newSubject();
      const written = await call('PATCH', `/v1/subjects/${id}/data`, { key: shopKey, body: { purpose: 'order_fulfilment', source: 'person', fields: { 'user.behavior.purchase_history': [{ book: 'b-1' }] } } });
      assert.equal(written.statusCode, 200, written.body);
      await record(id, [{ purpose: 'marketing', action: 'granted' }]);
      const readFor = (purpose: string, recipient: string) => call('GET', `/v1/subjects/${id}/data?purpose=${purpose}&recipient=${recipient}`, { key: shopKey });

      const own = await readData(id, 'marketing');
      assert.deepEqual(Object.keys(own.json().fields).sort(), ['user.behavior.purchase_history', 'user.contact.email', 'user.name']);
      const shared = await readFor('marketing', 'sister_shops');
      assert.equal(shared.statusCode, 200, shared.body);
      assert.equal(shared.json().recipient, 'sister_shops');
      assert.deepEqual(Object.keys(shared.json().fields).sort(), ['user.contact.email', 'user.name'], 'the purchase history does not go to the sister shops');
      const entry = (await testApp.app.audit.list({ targetId: id })).entries.find((item) => item.action === 'data.read' && item.details.recipient !== undefined)!;
      assert.deepEqual(entry.details, { categories: Object.keys(shared.json().fields), recipient: 'sister_shops' });
      assert.equal(entry.purpose, 'marketing');

      const unknown = await readFor('marketing', 'nobody');
      assert.equal(unknown.statusCode, 422);
      assert.equal(unknown.json().code, 'unknown_recipient');
      const notServing = await readFor('marketing', 'carrier');
      assert.equal(notServing.statusCode, 403);
      assert.equal(notServing.json().code, 'purpose_not_permitted');
      assert.equal(notServing.json().reason, 'recipient_purpose');

      await record(id, [{ recipient: 'sister_shops', action: 'denied' }]);
      const refused = await readFor('marketing', 'sister_shops');
      assert.equal(refused.statusCode, 403, refused.body);
      assert.equal(refused.json().code, 'purpose_not_permitted');
      assert.equal(refused.json().reason, 'consent');
      assert.match(refused.json().detail, /opted out of sharing with recipient "sister_shops"/);
      assert.equal((await readData(id, 'marketing')).statusCode, 200, 'the read for our own marketing still works');
      assert.ok(!JSON.stringify((await testApp.app.audit.list({ targetId: id })).entries).includes('@example.com'));
    });

    test("a visitor's choice about a recipient joins the subject's, and its receipts list the disclosure", async () => {
      const visitor = (await call('POST', '/v1/visitors')).json().id as string;
      const recorded = await record(visitor, [{ recipient: 'sister_shops', action: 'denied' }], { source: 'banner' });
      assert.equal(recorded.statusCode, 201, recorded.body);
      const receipt = (await call('GET', `/v1/consent/receipts/${recorded.json().receiptId}`)).json();
      assert.equal(receipt.services[0].purposes.length, 1);
      const entry = receipt.services[0].purposes[0];
      assert.equal(entry.thirdPartyDisclosure, true);
      assert.equal(entry.thirdPartyName, 'Our sister shops');
      assert.equal(entry.decision, 'denied');
      assert.equal(entry.consentType, 'IMPLICIT');
      assert.deepEqual(entry.purposeCategory, ['Sharing with our sister shops', 'Newsletter and offers']);
      assert.match(entry.purpose, /^Sharing with Our sister shops/);
      assert.equal(entry.piiCategory.length, 2);

      const id = await newSubject();
      const merged = await call('POST', `/v1/visitors/${visitor}/identify`, { body: { subjectId: id } });
      assert.equal(merged.statusCode, 200, merged.body);
      assert.equal(merged.json().merged, 1);
      assert.deepEqual(merged.json().events.map((event: { kind: string; target: string }) => `${event.kind} ${event.target}`), ['recipient sister_shops']);
      assert.equal((await decision(id, 'affiliate_sharing')).allowed, false, 'the subject has opted out of the sharing');
      const copied = (await history(id)).filter((event) => event.mergedFrom === visitor);
      assert.deepEqual(copied.map((event) => `${event.kind} ${event.target} ${event.action}`), ['recipient sister_shops denied']);
      const mergeReceipt = (await call('GET', `/v1/consent/receipts/${merged.json().receiptId}`)).json();
      assert.equal(mergeReceipt.services[0].purposes[0].thirdPartyName, 'Our sister shops');
    });

    test('the seams for mail: mayUse, mayReceive, optOutByEmailLink (idempotent)', async () => {
      const { consent } = testApp.app;
      const id = await newSubject();
      assert.equal((await consent.mayUse(id, 'marketing')).allowed, false);
      assert.equal(await consent.mayReceive(id, 'newsletter'), false);
      assert.equal(await consent.mayReceive(id, 'order_updates'), true, 'service mail follows its purpose only');
      await consent.record(system, { holder: id, source: 'privacy_center', choices: [{ purpose: 'marketing', action: 'granted' }] });
      assert.equal((await consent.mayUse(id, 'marketing')).allowed, true);
      assert.equal(await consent.mayReceive(id, 'newsletter'), true);

      const first = await consent.optOutByEmailLink(id, 'newsletter', { uaFamily: 'Safari' });
      assert.equal(first.events.length, 1);
      assert.equal(first.events[0]!.source, 'email_link');
      const second = await consent.optOutByEmailLink(id, 'newsletter');
      assert.equal(second.events.length, 0, 'a second click records nothing');
      assert.equal(await consent.mayReceive(id, 'newsletter'), false);
      assert.equal(await consent.mayReceive(id, 'product_news'), true, 'other topics keep going');
      await assert.rejects(consent.optOutByEmailLink(id, 'order_updates'), { code: 'consent_not_optional' });
      await assert.rejects(consent.mayReceive(id, 'horoscope'), { code: 'unknown_topic' });
    });

    test('every consent change is in the audit chain, by id, and the chain verifies', async () => {
      const id = await newSubject();
      await record(id, [{ purpose: 'marketing', action: 'granted' }], { headers: { 'cf-ipcountry': 'NL' } });
      await decision(id, 'analytics', { 'sec-gpc': '1' });
      const page = await testApp.app.audit.list({ targetId: id });
      const actions = page.entries.map((entry) => entry.action);
      assert.ok(actions.includes('consent.recorded'));
      assert.ok(actions.includes('consent.signal_applied'));
      const recorded = page.entries.find((entry) => entry.action === 'consent.recorded')!;
      assert.deepEqual(recorded.details.granted, ['marketing']);
      assert.ok(!JSON.stringify(page.entries).includes('@example.com'));
      const report = await testApp.app.audit.verify();
      assert.equal(report.ok, true, JSON.stringify(report.firstProblem));
    });

    test('concurrent writes share transactions yet each lands once; a signal raced by many requests applies once', async () => {
      const ids = await Promise.all(Array.from({ length: 10 }, () => newSubject()));
      const results = await Promise.all(ids.flatMap((id) => [record(id, [{ purpose: 'marketing', action: 'granted' }]), record(id, [{ topic: 'promotions', action: 'denied' }])]));
      assert.deepEqual([...new Set(results.map((response) => response.statusCode))], [201]);
      for (const id of ids) {
        assert.equal((await decision(id, 'marketing')).allowed, true);
        assert.equal(await testApp.app.consent.mayReceive(id, 'promotions'), false);
      }
      const raced = ids[0]!;
      const answers = await Promise.all(Array.from({ length: 20 }, () => decision(raced, 'marketing', { 'sec-gpc': '1' })));
      assert.ok(answers.every((answer) => !answer.allowed));
      assert.equal((await history(raced)).filter((event) => event.source === 'gpc').length, 2, 'marketing and analytics, once each');
      const report = await testApp.app.audit.verify();
      assert.equal(report.ok, true, JSON.stringify(report.firstProblem));
    });

    test('in one shared transaction, writes for an unknown or erased subject are refused alone, with their own codes', async () => {
      const { consent, subjects } = testApp.app;
      const [kept, gone] = [await newSubject(), await newSubject()];
      await subjects.erase(system, gone);
      const unknown = 'sub_00000000000000000000000000';
      // On PostgreSQL the group is one statement carrying its audit entries; count its tries.
      const audit = testApp.app.audit;
      const statementAppend = audit.statementAppend.bind(audit);
      let statements = 0;
      audit.statementAppend = (events) => {
        const append = statementAppend(events);
        if (append) statements++;
        return append;
      };
      const settled = await Promise.allSettled([
        consent.record(system, { holder: kept, choices: [{ purpose: 'marketing', action: 'granted' }] }),
        consent.record(system, { holder: unknown, choices: [{ purpose: 'marketing', action: 'granted' }] }),
        consent.record(system, { holder: gone, choices: [{ purpose: 'marketing', action: 'granted' }] }),
      ]).finally(() => {
        audit.statementAppend = statementAppend;
      });
      if (dialect === 'postgres') assert.equal(statements, 2, 'one statement refused the group, the second wrote what was left');
      assert.equal(settled[0].status, 'fulfilled');
      assert.equal(settled[1].status === 'rejected' && (settled[1].reason as { code?: string }).code, 'subject_not_found');
      assert.equal(settled[2].status === 'rejected' && (settled[2].reason as { code?: string }).code, 'subject_erased');
      assert.equal((await decision(kept, 'marketing')).allowed, true);
      const stored = await testApp.app.database.db.selectFrom('consent_events').select('id').where('holder', 'in', [gone, unknown]).execute();
      assert.equal(stored.length, 0, 'nothing was recorded for the unknown or the erased subject');
      const report = await testApp.app.audit.verify();
      assert.equal(report.ok, true, JSON.stringify(report.firstProblem));
    });

    test('without its audit entries nothing of a choice is kept (a database whose audit chain lost its head)', async () => {
      const { consent, database } = testApp.app;
      const holder = await newSubject();
      const head = await database.db.selectFrom('audit_head').selectAll().executeTakeFirstOrThrow();
      await database.db.deleteFrom('audit_head').execute();
      try {
        await assert.rejects(consent.record(system, { holder, choices: [{ purpose: 'marketing', action: 'granted' }] }), /audit/);
      } finally {
        await database.db.insertInto('audit_head').values(head).execute();
      }
      const stored = await database.db.selectFrom('consent_events').select('id').where('holder', '=', holder).execute();
      assert.equal(stored.length, 0);
      assert.equal((await decision(holder, 'marketing')).decision, null);
      const report = await testApp.app.audit.verify();
      assert.equal(report.ok, true, JSON.stringify(report.firstProblem));
    });

    test('a write that fails inside a shared transaction fails alone; its neighbours are stored', async () => {
      const { consent } = testApp.app;
      const [first, second] = [await newSubject(), await newSubject()];
      const earlier = await consent.record(system, { holder: first, choices: [{ purpose: 'marketing', action: 'granted' }] });
      // A write reusing an event id breaks the ledger's primary key: it can only fail in the database.
      const internals = consent as unknown as { commit(actor: unknown, holder: string, rows: unknown[], receipt: unknown, action: string, now: Date): Promise<unknown> };
      const now = new Date();
      const broken = internals.commit(system, first, [{ id: earlier.events[0]!.id, holder: first, target_kind: 'purpose', target: 'analytics', action: 'denied', source: 'api', policy_version: '1.0', country: null, ua_family: null, banner_version: null, merged_from: null, decided_at: now.toISOString(), receipt_id: 'r', recorded_at: now.toISOString() }], { consentReceiptID: '00000000-0000-4000-8000-00000000000b' }, 'consent.recorded', now);
      const fine = consent.record(system, { holder: second, choices: [{ purpose: 'marketing', action: 'granted' }] });
      const [brokenResult, fineResult] = await Promise.allSettled([broken, fine]);
      assert.equal(brokenResult.status, 'rejected');
      assert.equal(fineResult.status, 'fulfilled');
      assert.equal((await decision(second, 'marketing')).allowed, true);
      assert.equal((await decision(first, 'analytics')).decision, null, 'nothing of the failed write was kept');
      const report = await testApp.app.audit.verify();
      assert.equal(report.ok, true, JSON.stringify(report.firstProblem));
    });

    test('an erased subject takes no new choices; a vault read of an unknown subject stays 404', async () => {
      const id = await newSubject();
      await call('POST', `/v1/subjects/${id}/close`, { key: shopKey });
      assert.equal((await record(id, [{ purpose: 'marketing', action: 'withdrawn' }])).statusCode, 201, 'a closed account may still withdraw');
      await testApp.app.subjects.erase(system, id);
      const refused = await record(id, [{ purpose: 'marketing', action: 'granted' }]);
      assert.equal(refused.statusCode, 410);
      assert.equal((await call('GET', '/v1/subjects/sub_00000000000000000000000000/consent/marketing')).statusCode, 404);
    });
  });
}
