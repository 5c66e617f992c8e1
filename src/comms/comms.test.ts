import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { PledgeError } from '../core/errors.js';
import { loadPolicyFile, requirePolicy } from '../policy/policy.load.js';
import { createTestDatabase, testDialects } from '../../test/support/databases.js';
import { startSmtpSink, type ReceivedMail, type SmtpSink } from '../../test/support/smtp.js';
import { createMailTestApp, dayAfter, type MailTestApp } from './comms.test-support.js';
import { UnsubscribeTokens } from './comms.tokens.js';

const SYSTEM = { type: 'system', id: 'test' } as const;

/** The unsubscribe URL of the List-Unsubscribe header (RFC 2369: `<url>`). */
function headerLink(mail: ReceivedMail): string {
  const value = mail.headers.get('list-unsubscribe')?.[0] ?? '';
  const match = /<(https?:\/\/[^>]+)>/.exec(value);
  assert.ok(match, 'List-Unsubscribe carries an http(s) URL');
  return match[1]!;
}

/** The decoded text of a part (quoted-printable soft breaks and escapes undone). */
function decodedBody(raw: string): string {
  return raw.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_match, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

async function createSubject(test: MailTestApp, email: string): Promise<string> {
  const subject = await test.app.subjects.create(SYSTEM, { kinds: ['customer'], identities: [{ kind: 'email', value: email }] });
  return subject.id;
}

for (const dialect of testDialects()) {
  describe(`comms over SMTP on ${dialect}`, () => {
    let sink: SmtpSink;
    let mail: MailTestApp;
    let apiKey: string;

    before(async () => {
      sink = await startSmtpSink();
      mail = await createMailTestApp(dialect, { PLEDGE_SMTP_URL: sink.url, PLEDGE_SMTP_TIMEOUT_MS: '400', PLEDGE_OUTBOX_BACKOFF_MS: '1000', PLEDGE_OUTBOX_MAX_ATTEMPTS: '5' });
      ({ key: apiKey } = await mail.app.staff.createApiKey(SYSTEM, { name: 'comms test', permissions: ['comms:read', 'policy:accept'], purposes: 'all' }));
    });
    after(async () => {
      await mail?.cleanup();
      await sink?.close();
    });

    test('marketing mail carries the unsubscribe headers and the same link in text and HTML; service mail carries none', async () => {
      const subjectId = await createSubject(mail, 'reader@example.test');
      const news = await mail.app.comms.enqueue({ topic: 'newsletter', subjectId, template: 'message', data: { subject: 'New books', body: 'Ten new titles <b>this</b> month.' }, idempotencyKey: 'issue-1' });
      const order = await mail.app.comms.enqueue({ topic: 'order_updates', subjectId, template: 'message', data: { subject: 'Your order shipped', body: 'It is on its way.' }, idempotencyKey: 'order-1' });
      const report = await mail.app.comms.deliverBatch();
      assert.equal(report.delivered, 2);
      const newsMail = sink.received.find((entry) => entry.messageId.includes(news.id))!;
      const orderMail = sink.received.find((entry) => entry.messageId.includes(order.id))!;
      assert.deepEqual(newsMail.to, ['reader@example.test']);
      assert.deepEqual(newsMail.headers.get('list-unsubscribe-post'), ['List-Unsubscribe=One-Click']);
      const link = headerLink(newsMail);
      assert.ok(link.startsWith('https://privacy.example.test/v1/unsubscribe?token=v1.'), link);
      const body = decodedBody(newsMail.raw);
      assert.ok(body.includes(`Unsubscribe: ${link}`), 'the text part shows the link');
      assert.ok(body.includes(`<a href="${link}">Unsubscribe</a>`), 'the HTML part shows the link');
      assert.ok(body.includes('&lt;b&gt;this&lt;/b&gt;'), 'data is escaped in HTML');
      assert.equal(orderMail.headers.get('list-unsubscribe'), undefined);
      assert.equal((await mail.app.comms.get(news.id)).status, 'sent');
    });

    test('one-click unsubscribe end to end: no cookie, idempotent, suppression list and topic state; service mail still goes, queued marketing is dropped', async () => {
      const subjectId = await createSubject(mail, 'Leaving@Example.test');
      const first = await mail.app.comms.enqueue({ topic: 'newsletter', subjectId, template: 'message', data: { subject: 'Issue 1', body: 'Hello' }, idempotencyKey: 'issue-1' });
      await mail.app.comms.deliverBatch();
      const link = headerLink(sink.received.find((entry) => entry.messageId.includes(first.id))!);
      // Queued before the opt-out, not yet sent.
      const queued = await mail.app.comms.enqueue({ topic: 'newsletter', subjectId, template: 'message', data: { subject: 'Issue 2', body: 'Hello again' }, idempotencyKey: 'issue-2' });

      const url = link.slice('https://privacy.example.test'.length);
      const page = await mail.app.http.inject({ method: 'GET', url });
      assert.equal(page.statusCode, 200);
      assert.match(page.body, /<form method="post"/);
      assert.deepEqual(await mail.app.comms.topicStates(subjectId), [], 'a GET changes nothing');

      const post = () => mail.app.http.inject({ method: 'POST', url, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'List-Unsubscribe=One-Click' });
      const response = await post();
      assert.equal(response.statusCode, 200, response.body);
      assert.deepEqual(response.json(), { status: 'unsubscribed', topic: 'newsletter' });
      assert.equal(response.headers['set-cookie'], undefined);
      const replay = await post();
      assert.equal(replay.statusCode, 200);
      assert.deepEqual(replay.json(), response.json());

      assert.deepEqual((await mail.app.comms.topicStates(subjectId)).map((state) => [state.topic, state.state]), [['newsletter', 'unsubscribed']]);
      assert.equal(await mail.app.comms.isSuppressed('leaving@example.test', 'newsletter'), true);
      assert.equal(await mail.app.comms.isSuppressed('someone-else@example.test', 'newsletter'), false);
      const audited = await mail.app.audit.list({ action: 'comms.unsubscribed', targetId: subjectId });
      assert.equal(audited.entries.length, 1, 'the replay added no second effect');

      assert.equal((await mail.app.comms.get(queued.id)).status, 'dropped');
      const later = await mail.app.comms.enqueue({ topic: 'newsletter', subjectId, template: 'message', data: { subject: 'Issue 3', body: 'x' }, idempotencyKey: 'issue-3' });
      const service = await mail.app.comms.enqueue({ topic: 'order_updates', subjectId, template: 'message', data: { subject: 'Receipt', body: 'Thanks' }, idempotencyKey: 'receipt-1' });
      const report = await mail.app.comms.deliverBatch();
      assert.equal(report.dropped, 1);
      assert.equal((await mail.app.comms.get(later.id)).status, 'dropped');
      assert.equal((await mail.app.comms.get(later.id)).lastError, 'not_allowed');
      assert.equal((await mail.app.comms.get(service.id)).status, 'sent');
      assert.ok(sink.received.some((entry) => entry.messageId.includes(service.id)));
      assert.ok(!sink.received.some((entry) => entry.messageId.includes(queued.id) || entry.messageId.includes(later.id)));
    });

    test('re-subscribing after a one-click unsubscribe: the next newsletter is delivered, a replayed old link does not unsubscribe again, a newer one does', async () => {
      const subjectId = await createSubject(mail, 'Returning@Example.test');
      const { key } = await mail.app.staff.createApiKey(SYSTEM, { name: 'privacy center', permissions: ['consent:read', 'consent:write'], purposes: 'all' });
      const auth = { authorization: `Bearer ${key}` };
      const newsletter = async (issue: string) => {
        mail.clock.advance(1000);
        const queued = await mail.app.comms.enqueue({ topic: 'newsletter', subjectId, template: 'message', data: { subject: issue, body: 'Hello' }, idempotencyKey: issue });
        await mail.app.comms.deliverBatch();
        return { id: queued.id, row: await mail.app.comms.get(queued.id), received: sink.received.filter((entry) => entry.messageId.includes(queued.id)) };
      };
      const unsubscribe = (link: string) =>
        mail.app.http.inject({ method: 'POST', url: link.slice('https://privacy.example.test'.length), headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'List-Unsubscribe=One-Click' });

      const first = await newsletter('return-1');
      assert.equal(first.received.length, 1);
      const oldLink = headerLink(first.received[0]!);
      assert.equal((await unsubscribe(oldLink)).statusCode, 200);
      assert.equal((await newsletter('return-2')).row.status, 'dropped');

      mail.clock.advance(1000);
      const patched = await mail.app.http.inject({ method: 'PATCH', url: `/v1/subjects/${subjectId}/preferences`, headers: auth, payload: { topics: { newsletter: true } } });
      assert.equal(patched.statusCode, 200, patched.body);
      const topic = patched.json().topics.find((entry: { id: string }) => entry.id === 'newsletter');
      assert.equal(topic.subscribed, true);
      assert.equal(topic.receives, true);
      assert.equal(await mail.app.comms.isSuppressed('returning@example.test', 'newsletter'), false, 'the opt-in lifted the suppression');
      assert.deepEqual((await mail.app.comms.topicStates(subjectId)).map((state) => [state.topic, state.state]), [['newsletter', 'subscribed']]);
      const recorded = await mail.app.audit.list({ action: 'consent.recorded', targetId: subjectId });
      assert.deepEqual(recorded.entries.at(-1)!.details.optOutsLifted, ['topic:newsletter'], 'the audit says the opt-in lifted the unsubscribe');
      const history = await mail.app.http.inject({ method: 'GET', url: `/v1/consent/events?holder=${subjectId}`, headers: auth });
      assert.deepEqual(history.json().events.map((event: { target: string; action: string; source: string }) => [event.target, event.action, event.source]), [['newsletter', 'withdrawn', 'email_link'], ['newsletter', 'granted', 'api']]);

      const third = await newsletter('return-3');
      assert.equal(third.row.status, 'sent', 'delivered after the opt-in');
      assert.equal(third.received.length, 1);

      // The old link again (a replay, or a mail client's retry): it answers the same and changes nothing.
      const replay = await unsubscribe(oldLink);
      assert.equal(replay.statusCode, 200);
      assert.deepEqual(replay.json(), { status: 'unsubscribed', topic: 'newsletter' });
      assert.equal(await mail.app.comms.isSuppressed('returning@example.test', 'newsletter'), false);
      assert.equal((await mail.app.consent.decision(subjectId, 'marketing')).allowed, true);
      assert.equal((await mail.app.consent.mayReceive(subjectId, 'newsletter')), true, 'no withdrawal was recorded for the replay');
      assert.equal((await newsletter('return-4')).row.status, 'sent');

      // The link of a message sent after the opt-in is a new decision.
      assert.equal((await unsubscribe(headerLink(third.received[0]!))).statusCode, 200);
      assert.equal(await mail.app.comms.isSuppressed('returning@example.test', 'newsletter'), true);
      assert.equal((await newsletter('return-5')).row.status, 'dropped');
    });

    test('one-click also takes a multipart/form-data body, and answers an HTML form post with a page', async () => {
      const subjectId = await createSubject(mail, 'multipart@example.test');
      const message = await mail.app.comms.enqueue({ topic: 'newsletter', subjectId, template: 'message', data: { subject: 's', body: 'b' }, idempotencyKey: 'mp-1' });
      await mail.app.comms.deliverBatch();
      const url = headerLink(sink.received.find((entry) => entry.messageId.includes(message.id))!).slice('https://privacy.example.test'.length);
      const boundary = 'pledgeboundary';
      const payload = `--${boundary}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--${boundary}--\r\n`;
      const response = await mail.app.http.inject({ method: 'POST', url, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` }, payload });
      assert.equal(response.statusCode, 200, response.body);
      assert.equal(await mail.app.comms.isSuppressed('multipart@example.test', 'newsletter'), true);
      const page = await mail.app.http.inject({ method: 'POST', url, headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' }, payload: 'List-Unsubscribe=One-Click' });
      assert.equal(page.statusCode, 200);
      assert.match(page.body, /You are unsubscribed/);
    });

    test('forged, tampered, expired and reused unsubscribe tokens', async () => {
      const alice = await createSubject(mail, 'alice@example.test');
      const bob = await createSubject(mail, 'bob@example.test');
      const message = await mail.app.comms.enqueue({ topic: 'newsletter', subjectId: alice, template: 'message', data: { subject: 's', body: 'b' }, idempotencyKey: 'x' });
      await mail.app.comms.deliverBatch();
      const token = new URL(headerLink(sink.received.find((entry) => entry.messageId.includes(message.id))!)).searchParams.get('token')!;
      const post = (value: string) =>
        mail.app.http.inject({ method: 'POST', url: `/v1/unsubscribe?token=${encodeURIComponent(value)}`, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'List-Unsubscribe=One-Click' });

      const [prefix, payload, signature] = token.split('.');
      const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>;
      const tampered = (change: Record<string, unknown>) => `${prefix}.${Buffer.from(JSON.stringify({ ...claims, ...change })).toString('base64url')}.${signature}`;
      for (const bad of ['nonsense', `v1.${payload}.${'A'.repeat(43)}`, tampered({ s: bob }), tampered({ t: 'order_updates' }), tampered({ e: 9_999_999_999 })]) {
        const response = await post(bad);
        assert.equal(response.statusCode, 400, bad);
        assert.equal(response.json().code, 'unsubscribe_token_invalid');
      }
      // Signed with the right key, but naming bob with alice's message: still refused.
      const signer = new UnsubscribeTokens(mail.app.keyring.secret('token_signing'));
      const reused = signer.issue({ messageId: message.id, subjectId: bob, topic: 'newsletter', expires: Math.floor(Date.now() / 1000) + 3600 });
      assert.equal((await post(reused)).json().code, 'unsubscribe_token_invalid');
      const expired = signer.issue({ messageId: message.id, subjectId: alice, topic: 'newsletter', expires: Math.floor(mail.clock.now().getTime() / 1000) - 1 });
      const gone = await post(expired);
      assert.equal(gone.statusCode, 410);
      assert.equal(gone.json().code, 'unsubscribe_token_expired');
      const page = await mail.app.http.inject({ method: 'GET', url: `/v1/unsubscribe?token=${encodeURIComponent(tampered({ s: bob }))}` });
      assert.equal(page.statusCode, 400);
      assert.match(page.headers['content-type'] as string, /text\/html/);
      assert.deepEqual(await mail.app.comms.topicStates(alice), []);
      assert.deepEqual(await mail.app.comms.topicStates(bob), []);
    });

    test('header injection in names and subjects stays inside one header', async () => {
      const message = await mail.app.comms.enqueue({
        topic: 'request_notice',
        to: { address: 'visitor@example.test', name: 'Eve\r\nBcc: thief@example.test' },
        template: 'message',
        data: { subject: 'Your request\r\nBcc: thief@example.test\r\nX-Injected: yes', body: 'Hello', name: 'Eve\nBcc: thief@example.test' },
        idempotencyKey: 'req-1',
      });
      await mail.app.comms.deliverBatch();
      const received = sink.received.find((entry) => entry.messageId.includes(message.id))!;
      assert.deepEqual(received.to, ['visitor@example.test']);
      assert.equal(received.headers.get('bcc'), undefined);
      assert.equal(received.headers.get('x-injected'), undefined);
      assert.equal(received.headers.get('subject')?.length, 1);
      assert.ok(!received.raw.includes('thief@example.test>'), 'no address was added');
      const row = await mail.app.comms.get(message.id);
      assert.equal(row.status, 'sent');
      const stored = await mail.app.database.db.selectFrom('comms_outbox').select(['to_sealed', 'data_sealed']).where('id', '=', message.id).executeTakeFirstOrThrow();
      assert.deepEqual(stored, { to_sealed: null, data_sealed: '' }, 'no address or data is kept once sent');
    });

    test('the same idempotency key queues one message; an erased subject gets nothing', async () => {
      const subjectId = await createSubject(mail, 'twice@example.test');
      const input = { topic: 'order_updates', subjectId, template: 'message', data: { subject: 's', body: 'b' }, idempotencyKey: 'order-9' };
      const first = await mail.app.comms.enqueue(input);
      const second = await mail.app.comms.enqueue(input);
      assert.equal(second.id, first.id);
      assert.equal(second.created, false);
      await mail.app.subjects.erase(SYSTEM, subjectId);
      await mail.app.comms.deliverBatch();
      const row = await mail.app.comms.get(first.id);
      assert.equal(row.status, 'dropped');
      assert.equal(row.lastError, 'no_address');
    });

    test('company services queue mail over HTTP (POST /v1/outbox): once per idempotency key, audited, checked against the person\'s choices when sent', async () => {
      const subjectId = await createSubject(mail, 'Customer@Example.test');
      const { key } = await mail.app.staff.createApiKey(SYSTEM, { name: 'shop mailer', permissions: ['comms:write'], purposes: 'all' });
      const queue = (body: Record<string, unknown>, bearer = key) => mail.app.http.inject({ method: 'POST', url: '/v1/outbox', headers: { authorization: `Bearer ${bearer}` }, payload: body });
      const news = { topic: 'newsletter', subjectId, subject: 'Autumn titles', body: 'Ten new <b>books</b>.', name: 'Casey', idempotencyKey: 'autumn-2026' };

      const first = await queue(news);
      assert.equal(first.statusCode, 201, first.body);
      const queued = first.json();
      assert.equal(queued.created, true);
      assert.equal(queued.kind, 'marketing');
      assert.equal(queued.status, 'queued');
      assert.equal(queued.subjectId, subjectId);
      assert.ok(!first.body.includes('Autumn') && !first.body.includes('customer@'), 'the answer carries no address or content');
      const again = await queue({ ...news, body: 'a second try' });
      assert.equal(again.statusCode, 200);
      assert.equal(again.json().id, queued.id);
      assert.equal(again.json().created, false);

      const service = await queue({ topic: 'order_updates', subjectId, subject: 'Shipped\r\nBcc: thief@example.test', body: 'On its way.', idempotencyKey: 'order-77' });
      assert.equal(service.statusCode, 201, service.body);
      await mail.app.comms.deliverBatch();
      const newsMail = sink.received.find((entry) => entry.messageId.includes(queued.id))!;
      assert.deepEqual(newsMail.to, ['customer@example.test']);
      assert.deepEqual(newsMail.headers.get('subject'), ['Autumn titles']);
      assert.deepEqual(newsMail.headers.get('list-unsubscribe-post'), ['List-Unsubscribe=One-Click']);
      const body = decodedBody(newsMail.raw);
      assert.ok(body.includes('Ten new &lt;b&gt;books&lt;/b&gt;.') && !body.includes('a second try'));
      const serviceMail = sink.received.find((entry) => entry.messageId.includes(service.json().id))!;
      assert.equal(serviceMail.headers.get('list-unsubscribe'), undefined);
      assert.equal(serviceMail.headers.get('bcc'), undefined);
      assert.deepEqual(serviceMail.to, ['customer@example.test']);
      const audited = await mail.app.audit.list({ action: 'comms.queued', targetId: subjectId });
      assert.deepEqual(audited.entries.map((entry) => entry.details.topic).sort(), ['newsletter', 'order_updates'], 'the repeat was not queued again');
      assert.ok(!JSON.stringify(audited.entries).includes('Autumn'), 'the audit holds ids, not content');

      // Refused before it is sent: the message is dropped, service mail still goes.
      const later = await queue({ ...news, idempotencyKey: 'winter-2026' });
      await mail.app.consent.record(SYSTEM, { holder: subjectId, source: 'privacy_center', choices: [{ topic: 'newsletter', action: 'withdrawn' }] });
      await mail.app.comms.deliverBatch();
      assert.equal((await mail.app.comms.get(later.json().id)).status, 'dropped');
      assert.equal((await mail.app.comms.get(later.json().id)).lastError, 'not_allowed');
    });

    test('POST /v1/outbox refuses, with nothing queued: unknown or built-in topics, purposes outside the key, unknown or erased subjects, malformed bodies', async () => {
      const subjectId = await createSubject(mail, 'refused@example.test');
      const erased = await createSubject(mail, 'gone@example.test');
      await mail.app.subjects.erase(SYSTEM, erased);
      const { key } = await mail.app.staff.createApiKey(SYSTEM, { name: 'orders only', permissions: ['comms:write'], purposes: ['order_fulfilment'] });
      const queue = (body: unknown) => mail.app.http.inject({ method: 'POST', url: '/v1/outbox', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, payload: typeof body === 'string' ? body : JSON.stringify(body) });
      const valid = { topic: 'order_updates', subjectId, subject: 's', body: 'b', idempotencyKey: 'k-1' };
      const before = await mail.app.comms.counts();
      const cases: Array<[unknown, number, string]> = [
        [{ ...valid, topic: 'no_such_topic' }, 422, 'unknown_topic'],
        [{ ...valid, topic: 'policy_change' }, 422, 'unknown_topic'],
        [{ ...valid, topic: 'newsletter' }, 403, 'purpose_not_permitted'],
        [{ ...valid, subjectId: 'sub_00000000000000000000000000' }, 404, 'subject_not_found'],
        [{ ...valid, subjectId: erased }, 410, 'subject_erased'],
        [{ ...valid, bcc: 'x@example.test' }, 400, 'validation_failed'],
        [{ ...valid, body: '' }, 400, 'validation_failed'],
        [{ ...valid, sendAt: 'tomorrow' }, 400, 'validation_failed'],
        ['{"topic":', 400, 'malformed_body'],
      ];
      for (const [body, status, code] of cases) {
        const response = await queue(body);
        assert.equal(response.statusCode, status, `${JSON.stringify(body)}: ${response.body}`);
        assert.equal(response.headers['content-type'], 'application/problem+json; charset=utf-8');
        assert.equal(response.json().code, code, JSON.stringify(body));
        assert.ok(!response.body.includes('refused@'), 'no address in the problem');
      }
      assert.equal((await queue({ ...valid, topic: 'newsletter' })).json().reason, 'api_key_scope', 'the refusal says why');
      assert.deepEqual(await mail.app.comms.counts(), before, 'nothing was queued');
    });

    test('a server that refuses, stalls or drops: messages stay queued, backoff grows, nothing is lost', async () => {
      const subjectId = await createSubject(mail, 'patient@example.test');
      const message = await mail.app.comms.enqueue({ topic: 'order_updates', subjectId, template: 'message', data: { subject: 'retry me', body: 'b' }, idempotencyKey: 'retry-1' });
      const delays: number[] = [];
      for (const mode of ['refuse', 'stall', 'drop'] as const) {
        sink.mode = mode;
        const before = mail.clock.now().getTime();
        const report = await mail.app.comms.deliverBatch();
        assert.equal(report.retried, 1, mode);
        const row = await mail.app.comms.get(message.id);
        assert.equal(row.status, 'queued', mode);
        assert.ok(row.lastError && !row.lastError.includes('@'), `${mode}: ${row.lastError}`);
        delays.push(Date.parse(row.nextAttemptAt) - before);
        // Not due yet: nothing is claimed.
        assert.equal((await mail.app.comms.deliverBatch()).claimed, 0);
        mail.clock.set(row.nextAttemptAt);
      }
      assert.match((await mail.app.comms.get(message.id)).lastError!, /^E[A-Z]+/);
      // 1 s base, doubling, ±50 %: [0.5, 1.5] s, [1, 3] s, [2, 6] s.
      assert.ok(delays[0]! >= 500 && delays[0]! <= 1500, String(delays));
      assert.ok(delays[1]! >= 1000 && delays[1]! <= 3000, String(delays));
      assert.ok(delays[2]! >= 2000 && delays[2]! <= 6000, String(delays));
      assert.ok(delays[2]! > delays[0]!);
      sink.mode = 'ok';
      const report = await mail.app.comms.deliverBatch();
      assert.equal(report.delivered, 1);
      assert.equal((await mail.app.comms.get(message.id)).attempts, 4);
      assert.equal(sink.received.filter((entry) => entry.messageId.includes(message.id)).length, 1);
    });

    test('after the last attempt a message is failed, and stays listed', async () => {
      const subjectId = await createSubject(mail, 'unlucky@example.test');
      const message = await mail.app.comms.enqueue({ topic: 'order_updates', subjectId, template: 'message', data: { subject: 's', body: 'b' }, idempotencyKey: 'fail-1' });
      sink.mode = 'refuse';
      try {
        for (let attempt = 1; attempt <= 5; attempt++) {
          await mail.app.comms.deliverBatch();
          mail.clock.set((await mail.app.comms.get(message.id)).nextAttemptAt);
        }
      } finally {
        sink.mode = 'ok';
      }
      const row = await mail.app.comms.get(message.id);
      assert.equal(row.status, 'failed');
      assert.equal(row.attempts, 5);
      const listed = await mail.app.http.inject({ method: 'GET', url: '/v1/outbox?status=failed', headers: { authorization: `Bearer ${apiKey}` } });
      assert.equal(listed.statusCode, 200);
      assert.ok(listed.json().messages.some((entry: { id: string }) => entry.id === message.id));
      assert.ok(!listed.body.includes('unlucky@'), 'no address in the list');
    });

    test('a failed message is retried once the server recovers (POST /v1/outbox/{id}/retry): requeued now, audited, delivered once; marketing is re-checked when sent', async () => {
      const subjectId = await createSubject(mail, 'second-chance@example.test');
      const { key } = await mail.app.staff.createApiKey(SYSTEM, { name: 'mail operator', permissions: ['comms:read', 'comms:write'], purposes: 'all' });
      const retry = (id: string) => mail.app.http.inject({ method: 'POST', url: `/v1/outbox/${id}/retry`, headers: { authorization: `Bearer ${key}` } });
      const order = await mail.app.comms.enqueue({ topic: 'order_updates', subjectId, template: 'message', data: { subject: 'Your invoice', body: 'b' }, idempotencyKey: 'invoice-1' });
      const news = await mail.app.comms.enqueue({ topic: 'newsletter', subjectId, template: 'message', data: { subject: 'News', body: 'b' }, idempotencyKey: 'news-failed-1' });
      sink.mode = 'refuse';
      try {
        for (let attempt = 1; attempt <= 5; attempt++) {
          await mail.app.comms.deliverBatch();
          const rows = await Promise.all([order.id, news.id].map((id) => mail.app.comms.get(id)));
          mail.clock.set(rows.map((row) => row.nextAttemptAt).sort().at(-1)!);
        }
        assert.equal((await mail.app.comms.get(order.id)).status, 'failed');
        assert.equal((await mail.app.comms.get(news.id)).status, 'failed');
        // Still refusing: the same key again answers the failed row and sends nothing.
        const again = await mail.app.comms.enqueue({ topic: 'order_updates', subjectId, template: 'message', data: { subject: 'Your invoice', body: 'b' }, idempotencyKey: 'invoice-1' });
        assert.equal(again.id, order.id);
        assert.equal(again.created, false);
      } finally {
        sink.mode = 'ok';
      }

      const retried = await retry(order.id);
      assert.equal(retried.statusCode, 200, retried.body);
      assert.equal(retried.json().status, 'queued');
      assert.equal(retried.json().attempts, 0);
      assert.equal(retried.json().nextAttemptAt, mail.clock.now().toISOString(), 'due now');
      const twice = await retry(order.id);
      assert.equal(twice.statusCode, 409);
      assert.equal(twice.headers['content-type'], 'application/problem+json; charset=utf-8');
      assert.equal(twice.json().code, 'message_not_failed');
      assert.equal(twice.json().status, 409);
      assert.equal(twice.json().messageStatus, 'queued');
      assert.equal((await retry('msg_00000000000000000000000000')).json().code, 'message_not_found');

      // The person opted out of the newsletter while it was failing: retried, it is dropped when claimed.
      await mail.app.consent.record(SYSTEM, { holder: subjectId, source: 'privacy_center', choices: [{ topic: 'newsletter', action: 'withdrawn' }] });
      assert.equal((await retry(news.id)).statusCode, 200);

      const report = await mail.app.comms.deliverBatch();
      assert.equal(report.delivered, 1);
      assert.equal(report.dropped, 1);
      assert.equal((await mail.app.comms.get(order.id)).status, 'sent');
      assert.equal((await mail.app.comms.get(news.id)).lastError, 'not_allowed');
      assert.equal(sink.received.filter((entry) => entry.messageId.includes(order.id)).length, 1, 'delivered once');
      assert.ok(!sink.received.some((entry) => entry.messageId.includes(news.id)));
      assert.equal((await mail.app.comms.deliverBatch()).claimed, 0);
      assert.equal((await retry(order.id)).json().messageStatus, 'sent', 'a sent message is not retried');

      const audited = await mail.app.audit.list({ action: 'comms.retried', targetId: subjectId });
      assert.deepEqual(audited.entries.map((entry) => entry.details.message).sort(), [news.id, order.id].sort());
      assert.ok(!JSON.stringify(audited.entries).includes('second-chance'), 'ids only');
      const readOnly = await mail.app.http.inject({ method: 'POST', url: `/v1/outbox/${order.id}/retry`, headers: { authorization: `Bearer ${apiKey}` } });
      assert.equal(readOnly.statusCode, 403, 'comms:write is needed');
    });

    test('publishing a materially changed policy queues one notice per registered subject; acceptances are recorded', async () => {
      const registered = await Promise.all(['n1@example.test', 'n2@example.test', 'n3@example.test'].map((email) => createSubject(mail, email)));
      const noEmail = await mail.app.subjects.create(SYSTEM, { kinds: ['customer'], identities: [{ kind: 'user_id', value: 'u-1' }] });
      const v2 = requirePolicy(loadPolicyFile(mail.policies.v2));
      // The policy in force promises 30 days' notice of material changes: sooner is refused, and nothing is published.
      const soon = dayAfter(mail.clock.now(), 29);
      await assert.rejects(mail.app.comms.publishPolicy(SYSTEM, v2, soon), (error: PledgeError) => error.code === 'effective_date_too_early' && error.details?.earliest === dayAfter(mail.clock.now(), 30));
      await assert.rejects(mail.app.comms.publishPolicy(SYSTEM, v2, '2027-02-30'), (error: PledgeError) => error.code === 'invalid_effective_date');
      assert.equal((await mail.app.policy.listVersions()).length, 1);
      const effective = dayAfter(mail.clock.now(), 30);
      const published = await mail.app.comms.publishPolicy(SYSTEM, v2, effective);
      assert.equal(published.created, true);
      assert.equal(published.material, true);
      assert.equal(published.noticesScheduled, true);
      const again = await mail.app.comms.publishPolicy(SYSTEM, v2, effective);
      assert.equal(again.created, false);
      while ((await mail.app.comms.step()) > 0);
      const run = await mail.app.comms.noticeRun(published.version.id);
      assert.equal(run?.status, 'done');
      const notices = (await mail.app.comms.list({ kind: 'policy_change', limit: 500 })).filter((entry) => entry.policyVersionId === published.version.id);
      const active = (await mail.app.subjects.registeredAfter(mail.app.database.db, '', 10_000)).length;
      assert.equal(notices.length, active);
      assert.equal(new Set(notices.map((entry) => entry.subjectId)).size, notices.length);
      for (const id of registered) assert.ok(notices.some((entry) => entry.subjectId === id && entry.status === 'sent'));
      assert.ok(!notices.some((entry) => entry.subjectId === noEmail.id));
      const notice = sink.received.find((entry) => entry.to.includes('n1@example.test') && entry.headers.get('subject')?.[0]?.includes('privacy policy'))!;
      assert.ok(decodedBody(notice.raw).includes(`/policy/versions/${published.version.id}`));
      assert.equal(notice.headers.get('list-unsubscribe'), undefined);

      const versions = await mail.app.http.inject({ method: 'GET', url: '/policy/versions' });
      assert.equal(versions.statusCode, 200);
      const listed = versions.json().versions as Array<{ id: string; version: string; active: boolean }>;
      assert.deepEqual(listed.map((entry) => entry.version), ['2.0', '1.0']);
      assert.equal(listed.filter((entry) => entry.active).length, 1);
      const old = await mail.app.http.inject({ method: 'GET', url: `/policy/versions/${listed[1]!.id}`, headers: { accept: 'text/html' } });
      assert.equal(old.statusCode, 200);
      assert.match(old.body, /<html/);
      const doc = await mail.app.http.inject({ method: 'GET', url: `/policy/versions/${published.version.id}` });
      assert.equal(doc.json().version, '2.0');

      const accept = () => mail.app.http.inject({ method: 'POST', url: `/v1/subjects/${registered[0]}/acceptances`, headers: { authorization: `Bearer ${apiKey}` }, payload: { version: published.version.id } });
      const first = await accept();
      assert.equal(first.statusCode, 201, first.body);
      assert.equal(first.json().versionId, published.version.id);
      assert.equal((await accept()).statusCode, 200);
      const missing = await mail.app.http.inject({ method: 'POST', url: `/v1/subjects/${registered[0]}/acceptances`, headers: { authorization: `Bearer ${apiKey}` }, payload: { version: 'pol_00000000000000000000000000' } });
      assert.equal(missing.json().code, 'policy_version_not_found');
    });
  });

  describe(`comms without SMTP on ${dialect}`, () => {
    let mail: MailTestApp;
    before(async () => {
      mail = await createMailTestApp(dialect);
    });
    after(() => mail?.cleanup());

    test('messages stay in the outbox as .eml files, listed through the API', async () => {
      const subjectId = await createSubject(mail, 'offline@example.test');
      const message = await mail.app.comms.enqueue({ topic: 'newsletter', subjectId, template: 'message', data: { subject: 'Stored', body: 'kept here' }, idempotencyKey: 'eml-1' });
      const report = await mail.app.comms.deliverBatch();
      assert.equal(report.delivered, 1);
      const file = mail.app.comms.emlPath(message.id);
      assert.ok(existsSync(file));
      const raw = readFileSync(file, 'utf8');
      assert.match(raw, /^List-Unsubscribe-Post: List-Unsubscribe=One-Click$/m);
      assert.match(raw, new RegExp(`^Message-ID: <${message.id}@`, 'm'));
      const { key } = await mail.app.staff.createApiKey(SYSTEM, { name: 'reader', permissions: ['comms:read'], purposes: 'all' });
      const listed = await mail.app.http.inject({ method: 'GET', url: '/v1/outbox', headers: { authorization: `Bearer ${key}` } });
      assert.equal(listed.statusCode, 200);
      assert.deepEqual(listed.json().messages.map((entry: { id: string; status: string }) => [entry.id, entry.status]), [[message.id, 'stored']]);
      assert.equal(listed.json().counts.stored, 1);
      const one = await mail.app.http.inject({ method: 'GET', url: `/v1/outbox/${message.id}`, headers: { authorization: `Bearer ${key}` } });
      assert.equal(one.json().status, 'stored');
      assert.ok(!listed.body.includes('offline@') && !one.body.includes('offline@'));
    });
  });
}

test('createTestDatabase is reachable (the comms suite runs on every configured database)', async () => {
  for (const dialect of testDialects()) {
    const database = await createTestDatabase(dialect);
    await database.cleanup();
  }
});
