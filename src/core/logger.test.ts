import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createTestApp } from '../../test/support/app.js';
import { createLogger } from './logger.js';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(String(chunk));
      callback();
    },
  });
  return { stream, text: () => lines.join('') };
}

test('fields that hold personal data are redacted, at the top level and one level down', () => {
  const sink = capture();
  const logger = createLogger('info', sink.stream);
  logger.info({ email: 'jane@example.com', subject: { id: 'sub_1', phone: '+1 555 0100', identity: 'jane' }, password: 'hunter2' }, 'something happened');
  const text = sink.text();
  for (const secret of ['jane@example.com', '+1 555 0100', 'hunter2', '"jane"']) assert.ok(!text.includes(secret), `${secret} leaked`);
  assert.match(text, /"id":"sub_1"/, 'ids stay visible');
  assert.match(text, /\[redacted\]/);
});

test('request logs drop query strings and credential headers', async () => {
  const sink = capture();
  const testApp = await createTestApp('sqlite');
  try {
    // A fresh app whose logger writes to the capture stream, sharing the test database.
    const { createApp } = await import('../app.js');
    const app = await createApp(testApp.app.config, { logger: createLogger('info', sink.stream) });
    try {
      await app.http.inject({ url: '/policy?email=jane%40example.com', headers: { authorization: 'Bearer s3cret-token', cookie: 'session=abc123' } });
      await app.http.inject({ url: '/nope?phone=5550100' });
    } finally {
      await app.close();
    }
  } finally {
    await testApp.cleanup();
  }
  const text = sink.text();
  assert.match(text, /"url":"\/policy"/, 'the path is logged');
  for (const secret of ['jane', 'example.com', 's3cret-token', 'abc123', '5550100']) assert.ok(!text.includes(secret), `${secret} leaked into the log`);
});
