import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import pino from 'pino';
import Fastify, { type FastifyBaseLogger } from 'fastify';
import { lazyChildLogger, requestLogController } from './request-logger.js';

function capture(level: string): { logger: FastifyBaseLogger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level }, stream) as unknown as FastifyBaseLogger, lines };
}

type Leveled = FastifyBaseLogger & { isLevelEnabled(level: string): boolean };
const requestLogger = (...args: Parameters<typeof lazyChildLogger>) => lazyChildLogger(...args) as Leveled;
const settle = () => new Promise((resolve) => setImmediate(resolve));

test('a request logger writes only what its level lets through, with the request bound to each line', async () => {
  const { logger, lines } = capture('info');
  const request = requestLogger(logger, { reqId: 'r1' }, {});
  request.debug('not at info');
  request.info('at info');
  await settle();
  assert.deepEqual(lines.map((line) => [line.msg, line.reqId]), [['at info', 'r1']]);
  assert.equal(request.isLevelEnabled('debug'), false);
  assert.equal(request.isLevelEnabled('info'), true);
});

test("a route's own level decides for its requests, above or below the server's", async () => {
  const { logger, lines } = capture('info');
  const quiet = requestLogger(logger, { reqId: 'quiet' }, { level: 'warn' });
  quiet.info('incoming request');
  quiet.warn('slow database');
  const chatty = requestLogger(logger, { reqId: 'chatty' }, { level: 'debug' });
  chatty.debug('details');
  chatty.trace('too fine');
  const silent = requestLogger(logger, { reqId: 'silent' }, { level: 'silent' });
  silent.fatal('never');
  await settle();
  assert.deepEqual(lines.map((line) => [line.msg, line.reqId]), [['slow database', 'quiet'], ['details', 'chatty']]);
  assert.equal(quiet.isLevelEnabled('info'), false);
  assert.equal(quiet.isLevelEnabled('error'), true);
  assert.equal(chatty.isLevelEnabled('debug'), true);
});

test("Fastify's per-request lines are written at info and skipped above it; a failed response is still logged", async () => {
  const linesAt = async (level: string) => {
    const { logger, lines } = capture(level);
    const app = Fastify({ loggerInstance: logger, childLoggerFactory: lazyChildLogger, logController: requestLogController() });
    app.get('/ok', async () => ({ ok: true }));
    app.get('/broken', (_request, reply) => {
      // Headers out, then the connection fails: Fastify reports the response as errored.
      reply.raw.writeHead(200);
      reply.raw.destroy(new Error('socket gone'));
    });
    await app.inject('/ok');
    await app.inject('/broken').catch(() => undefined);
    await app.close();
    await settle();
    return lines.map((line) => line.msg);
  };
  const atInfo = await linesAt('info');
  assert.equal(atInfo.filter((message) => message === 'incoming request').length, 2);
  assert.ok(atInfo.includes('request completed'));
  const atWarn = await linesAt('warn');
  assert.ok(!atWarn.includes('incoming request') && !atWarn.includes('request completed'), atWarn.join(', '));
  assert.ok(atWarn.includes('request errored'), atWarn.join(', '));
});
