import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { loadConfig } from '../src/core/config.js';
import { createLogger } from '../src/core/logger.js';
import { createEngine, type Engine } from '../src/engine.js';
import { loadPolicyFile, requirePolicy } from '../src/policy/policy.load.js';
import type { Actor } from '../src/staff/permissions.js';
import { writeMailPolicies } from '../src/comms/comms.test-support.js';
import { createTestDatabase, temporaryDirectory, type TestDialect } from '../test/support/databases.js';
import { requireTemplate } from '../src/comms/comms.templates.js';
import { smtpTransport } from '../src/comms/comms.transport.js';
import { targetRow, type ResultRow } from './support.js';

const actor: Actor = { type: 'system', id: 'bench' };

/** The loopback sink in its own process; resolves with its URL and a stop that returns its count. */
async function startSink(): Promise<{ url: string; stop(): Promise<number> }> {
  const child: ChildProcess = spawn(process.execPath, [path.resolve('dist/bench/smtp-sink.js')], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the SMTP sink did not start')), 10_000);
    child.stdout!.on('data', () => {
      const match = /port (\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
  });
  return {
    url: `smtp://127.0.0.1:${port}`,
    stop: () =>
      new Promise((resolve) => {
        child.on('exit', () => resolve(Number(/accepted (\d+)/.exec(output)?.[1] ?? 0)));
        child.kill('SIGTERM');
      }),
  };
}

async function openEngine(dialect: TestDialect, smtpUrl: string) {
  const database = await createTestDatabase(dialect);
  const directory = temporaryDirectory('pledge-bench-comms-');
  const policies = writeMailPolicies(directory.path);
  const { config } = loadConfig({
    PLEDGE_MASTER_KEY: randomBytes(32).toString('hex'),
    PLEDGE_DATA_DIR: path.join(directory.path, 'data'),
    PLEDGE_POLICY: policies.v1,
    PLEDGE_SMTP_URL: smtpUrl,
    PLEDGE_OUTBOX_BATCH: '500',
    ...(dialect === 'postgres' ? { PLEDGE_DATABASE_URL: database.url } : {}),
  });
  const engine = await createEngine(config, { logger: createLogger('silent') });
  return {
    engine,
    policies,
    async close() {
      await engine.close();
      await database.cleanup();
      directory.remove();
    },
  };
}

async function createSubjects(engine: Engine, total: number): Promise<string[]> {
  const ids: string[] = [];
  for (let start = 0; start < total; start += 1000) {
    const batch = await engine.subjects.createMany(
      actor,
      Array.from({ length: Math.min(1000, total - start) }, (_, index) => ({ kinds: ['customer'], identities: [{ kind: 'email' as const, value: `person${start + index}@example.com` }] })),
    );
    ids.push(...batch.map((subject) => subject.id));
  }
  return ids;
}

/** Drains the outbox (and any notice run) as the worker does: two loops of steps side by side. */
async function drain(engine: Engine): Promise<void> {
  const loop = async () => {
    for (;;) {
      const done = await engine.comms.step();
      if (done === 0) {
        const counts = await engine.comms.counts();
        if ((counts.queued ?? 0) === 0 && (counts.sending ?? 0) === 0) return;
        // The other loop's batch is on the wire: wait as the worker would (its poll interval, shortened).
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  };
  await Promise.all([loop(), loop()]);
}

/**
 * The ceiling: the same messages (same template, same size) handed straight to nodemailer's
 * pool with the same settings and the same sink, with no outbox, database, vault or audit.
 */
async function bareTransportRate(url: string, total: number): Promise<number> {
  const transport = smtpTransport(url, { timeoutMs: 30_000 });
  const template = requireTemplate('message');
  const mail = (index: number) => {
    const content = template.render({ subject: `Order ${index} shipped`, body: 'It is on its way.' }, { organization: 'Northwind Books', topicName: 'Order and account notices', publicUrl: 'https://privacy.example.com' });
    return { id: `bench${index}`, messageId: `<bench${index}@example.com>`, from: { name: 'Bench', address: 'privacy@example.com' }, to: { address: `person${index}@example.com` }, ...content };
  };
  await transport.send(mail(0));
  const started = performance.now();
  for (let start = 0; start < total; start += 500) {
    await Promise.all(Array.from({ length: Math.min(500, total - start) }, (_, index) => transport.send(mail(start + index))));
  }
  const rate = total / ((performance.now() - started) / 1000);
  await transport.close();
  return rate;
}

/** Service mail already queued, delivered through pooled SMTP connections to a loopback sink. */
export async function benchOutbox(dialect: TestDialect = 'sqlite', total = 3000): Promise<ResultRow[]> {
  const sink = await startSink();
  const { engine, close } = await openEngine(dialect, sink.url);
  try {
    const subjects = await createSubjects(engine, total);
    for (const [index, subjectId] of subjects.entries()) {
      await engine.comms.enqueue({ topic: 'order_updates', subjectId, template: 'message', data: { subject: `Order ${index} shipped`, body: 'It is on its way.' }, idempotencyKey: `order-${index}` });
    }
    const started = performance.now();
    await drain(engine);
    const seconds = (performance.now() - started) / 1000;
    const sent = (await engine.comms.counts()).sent ?? 0;
    const rate = sent / seconds;
    const ceiling = await bareTransportRate(sink.url, total);
    return [
      {
        ...targetRow(
          `outbox → loopback SMTP sink (own process), ${total.toLocaleString('en')} messages, 5 pooled connections, recipients decrypted and audited (${dialect === 'sqlite' ? 'SQLite' : 'PostgreSQL'})`,
          `${Math.round(rate).toLocaleString('en')} messages/s (${seconds.toFixed(1)} s, ${sent.toLocaleString('en')} sent)`,
          '≥ 500 messages/s',
          rate >= 500 && sent === total,
        ),
        ceiling: `${Math.round(ceiling).toLocaleString('en')} messages/s (nodemailer pool alone, same sink)`,
        ratio: `${(rate / ceiling).toFixed(2)}×`,
      },
    ];
  } finally {
    await close();
    await sink.stop();
  }
}

/**
 * A material policy change: publish, then queue and send one notice per registered subject.
 * Measured on 10,000 subjects by default; `npm run bench notices-100k` runs the full 100,000.
 */
export async function benchPolicyNotices(dialect: TestDialect = 'sqlite', subjects = 10_000): Promise<ResultRow[]> {
  const sink = await startSink();
  const { engine, policies, close } = await openEngine(dialect, sink.url);
  try {
    await createSubjects(engine, subjects);
    const started = performance.now();
    // A material change takes effect after the notice the policy in force promises (30 days): ninety days from today.
    const effective = new Date(Date.now() + 90 * 86_400_000).toISOString().slice(0, 10);
    const published = await engine.comms.publishPolicy(actor, requirePolicy(loadPolicyFile(policies.v2)), effective);
    await drain(engine);
    const seconds = (performance.now() - started) / 1000;
    const run = await engine.comms.noticeRun(published.version.id);
    const sent = (await engine.comms.counts()).sent ?? 0;
    const projected = (seconds / subjects) * 100_000;
    return [
      targetRow(
        `policy-change notice to ${subjects.toLocaleString('en')} subjects: publish, queue (batches of 1,000) and send to a loopback SMTP sink (${dialect === 'sqlite' ? 'SQLite' : 'PostgreSQL'})`,
        `${seconds.toFixed(1)} s (${Math.round(sent / seconds)} notices/s; ${run?.queued ?? 0} queued, ${sent} sent)${subjects < 100_000 ? `; 100,000 at this rate: ${(projected / 60).toFixed(1)} min` : ''}`,
        '100,000 in ≤ 5 min',
        projected <= 300 && sent === subjects,
      ),
    ];
  } finally {
    await close();
    await sink.stop();
  }
}
