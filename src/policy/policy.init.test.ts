import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { askStarterAnswers, defaultStarterAnswers, renderStarterPolicy, starterAnswerProblems, type StarterAnswers } from './policy.init.js';
import { loadPolicyText } from './policy.load.js';
import { PolicySchema } from './policy.schema.js';

const TODAY = { today: new Date('2026-02-03T12:00:00Z') };

function loadStarter(answers: StarterAnswers) {
  const text = renderStarterPolicy(answers, TODAY);
  const result = loadPolicyText(text, 'pledge.yaml');
  return { text, result };
}

describe('renderStarterPolicy', () => {
  test('every combination of answers gives a policy with no issues', () => {
    let count = 0;
    for (const sellsProducts of [true, false]) {
      for (const sendsMarketing of [true, false]) {
        for (const usesAnalytics of [true, false]) {
          for (const minimumAge of [0, 13, 16, 21]) {
            const answers = { ...defaultStarterAnswers, sellsProducts, sendsMarketing, usesAnalytics, minimumAge };
            const { result } = loadStarter(answers);
            const label = JSON.stringify({ sellsProducts, sendsMarketing, usesAnalytics, minimumAge });
            assert.deepEqual(result.issues.filter((issue) => issue.severity === 'error'), [], `errors for ${label}`);
            assert.deepEqual(result.issues, [], `warnings for ${label}`);
            const document = result.policy!.document;
            assert.equal(document.children?.minimum_age, minimumAge);
            assert.equal(document.purposes.some((purpose) => purpose.id === 'marketing'), sendsMarketing);
            assert.equal(document.purposes.some((purpose) => purpose.id === 'analytics'), usesAnalytics);
            assert.equal(document.purposes.some((purpose) => purpose.id === 'order_fulfilment'), sellsProducts);
            assert.equal(document.signals?.gpc?.honoured, sendsMarketing || usesAnalytics);
            count++;
          }
        }
      }
    }
    assert.equal(count, 32);
  });

  test('starts with the schema line and shows every top-level section, commented', () => {
    const { text, result } = loadStarter(defaultStarterAnswers);
    assert.equal(text.split('\n')[0], '# yaml-language-server: $schema=./pledge.schema.json');
    const keys = Object.keys(parse(text) as object);
    const sections = Object.keys(PolicySchema.properties).filter((key) => key !== '$schema');
    assert.deepEqual([...keys].sort(), [...sections].sort());
    for (const section of sections) {
      const at = text.split('\n').findIndex((line) => line.startsWith(`${section}:`));
      assert.match(text.split('\n')[at - 1]!, /^#/, `section ${section} has a comment above it`);
    }
    assert.deepEqual(result.policy!.document.datasets, []);
    assert.match(text, /# Connected datastores/);
    assert.equal(result.policy!.document.policy.effective_date, '2026-02-03');
  });

  test('answers are quoted: a name with a colon, quotes and # survives as written', () => {
    const organization = 'Acme: "Best" #1 Shop\'s — Ünïcode & co. [x] {y} *z';
    const answers = { ...defaultStarterAnswers, organization, website: 'https://acme.example.com/a?b=c#d', privacyEmail: "o'brien+privacy@acme.example.com", jurisdiction: 'US-CA' };
    const { result } = loadStarter(answers);
    assert.deepEqual(result.issues, []);
    const document = result.policy!.document;
    assert.equal(document.organization.name, organization);
    assert.equal(document.organization.website, answers.website);
    assert.equal(document.organization.contacts[0]!.email, answers.privacyEmail);
    assert.equal(document.organization.jurisdiction, 'US-CA');
    assert.deepEqual(document.storage.regions, ['US-CA']);
    assert.ok(document.policy.summary!.includes(organization));
  });

  test('a name with a newline or a leading dash stays one value', () => {
    const { result } = loadStarter({ ...defaultStarterAnswers, organization: '- Dash\nCo' });
    assert.equal(result.policy!.document.organization.name, '- Dash\nCo');
  });

  test('invalid answers are refused with the reasons', () => {
    const bad = { ...defaultStarterAnswers, privacyEmail: 'nope', minimumAge: 22, jurisdiction: 'usa' };
    assert.equal(starterAnswerProblems(bad).length, 3);
    assert.throws(() => renderStarterPolicy(bad), (error: unknown) => error instanceof RangeError && /email/.test(error.message) && /minimum age/.test(error.message));
    assert.deepEqual(starterAnswerProblems(defaultStarterAnswers), []);
  });
});

/** Runs the questions against scripted lines; returns the answers and everything written. */
async function converse(lines: string[], endInput = true): Promise<{ answers: StarterAnswers; output: string }> {
  const input = new PassThrough();
  const output = new PassThrough();
  let written = '';
  output.on('data', (chunk: Buffer) => (written += chunk.toString('utf8')));
  input.write(lines.map((line) => `${line}\n`).join(''));
  if (endInput) input.end();
  const answers = await askStarterAnswers(input, output);
  return { answers, output: written };
}

describe('askStarterAnswers', () => {
  test('reads every answer, re-asking after invalid ones', async () => {
    const { answers, output } = await converse([
      'Acme: "Best" #1',
      'acme.example.com',
      'not an email',
      'legal@acme.example.com',
      'de',
      'maybe',
      'n',
      'yes',
      '',
      '30',
      '12.5',
      '12',
    ]);
    assert.deepEqual(answers, {
      organization: 'Acme: "Best" #1',
      website: 'https://acme.example.com',
      privacyEmail: 'legal@acme.example.com',
      jurisdiction: 'DE',
      sellsProducts: false,
      sendsMarketing: true,
      usesAnalytics: true,
      minimumAge: 12,
    });
    assert.match(output, /Organization name \[Example Inc\.\] /);
    assert.match(output, /Email address for privacy questions and requests \[privacy@example\.com\] /);
    assert.match(output, /\[US\] /);
    assert.match(output, /\(y\/n\) \[Y\/n\] /);
    assert.match(output, /\[16\] /);
    assert.equal(output.match(/Please enter an email address/g)?.length, 1);
    assert.equal(output.match(/Please answer y or n\./g)?.length, 1);
    assert.equal(output.match(/Please enter a whole number from 0 to 21\./g)?.length, 2);
    assert.equal(output.match(/Email address for privacy questions/g)?.length, 2, 'the email question is asked again');
    assert.deepEqual(loadStarter(answers).result.issues, []);
  });

  test('Enter keeps every default', async () => {
    const { answers } = await converse(['', '', '', '', '', '', '', '']);
    assert.deepEqual(answers, { ...defaultStarterAnswers });
  });

  test('answers typed one at a time, after each prompt', async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    const script = ['Slow Co', '', 'a@b.co', 'US', 'y', 'n', 'n', '18'];
    output.on('data', (chunk: Buffer) => {
      // Answer each prompt (they end with "] ") only once it has appeared.
      if (chunk.toString('utf8').endsWith('] ') && script.length > 0) setImmediate(() => input.write(`${script.shift()}\n`));
    });
    const answers = await askStarterAnswers(input, output);
    assert.deepEqual(answers, { organization: 'Slow Co', privacyEmail: 'a@b.co', jurisdiction: 'US', sellsProducts: true, sendsMarketing: false, usesAnalytics: false, minimumAge: 18 });
  });

  test('input that ends too early is an error, not a hang', async () => {
    await assert.rejects(converse(['Acme', '']), /ended before every question was answered/);
    await assert.rejects(converse(['Acme', '', 'bad email']), /ended before/);
  });
});
