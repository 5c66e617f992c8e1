import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { temporaryDirectory } from '../../test/support/databases.js';
import { formatIssue } from './policy.issues.js';
import { loadPolicyFile, loadPolicyText, MAX_POLICY_BYTES, requirePolicy } from './policy.load.js';
import { PledgeError } from '../core/errors.js';
import { editedText, errorsOf, lineOf } from '../../test/support/policy-text.js';

const DEMO = readFileSync('examples/demo/pledge.yaml', 'utf8');

const edited = (search: string | RegExp, replacement: string): string => editedText(DEMO, search, replacement);

describe('a valid policy', () => {
  test('the demo policy loads with no issues and a stable hash', () => {
    const first = loadPolicyText(DEMO, 'pledge.yaml');
    assert.deepEqual(first.issues, []);
    assert.ok(first.policy);
    assert.match(first.policy.hash, /^[0-9a-f]{64}$/);
    assert.equal(loadPolicyText(DEMO, 'other.yaml').policy!.hash, first.policy.hash);
    assert.ok(Object.isFrozen(first.policy.document.purposes[0]), 'the document is frozen');
  });

  test('reordering keys does not change the hash; changing a value does', () => {
    const base = loadPolicyText(DEMO, 'a.yaml').policy!;
    const reordered = edited('pledge: 1\n', '').concat('\npledge: 1\n');
    assert.equal(loadPolicyText(reordered, 'a.yaml').policy!.hash, base.hash);
    assert.notEqual(loadPolicyText(edited('version: "1.0"', 'version: "1.1"'), 'a.yaml').policy!.hash, base.hash);
  });

  test('the model answers purpose and retention questions', () => {
    const policy = loadPolicyText(DEMO, 'pledge.yaml').policy!;
    assert.equal(policy.choiceOf('marketing'), 'opt_in');
    assert.equal(policy.choiceOf('analytics'), 'opt_out');
    assert.equal(policy.choiceOf('order_fulfilment'), 'none');
    assert.equal(policy.purposeAllows('order_fulfilment', 'user.contact.address'), true, 'user.contact covers user.contact.address');
    assert.equal(policy.purposeAllows('analytics', 'user.contact.email'), false);
    assert.equal(policy.isCollected('user.contact.email'), true);
    assert.equal(policy.isCollected('user.health'), false);
    assert.deepEqual(policy.retentionFor('user.device.ip_address').map((entry) => entry.rule.id), ['browsing_logs']);
    assert.deepEqual(policy.deadlineFor('withdraw_consent'), { days: 2, kind: 'business' });
    assert.deepEqual(policy.gpcOptOuts(), ['marketing', 'analytics']);
  });
});

describe('bad input is reported with file:line:column, a path and a suggestion', () => {
  test('a misspelt category', () => {
    const text = edited('categories: [user.contact.email]\n    subjects: [subscriber', 'categories: [user.contact.emial]\n    subjects: [subscriber');
    const [issue, ...rest] = errorsOf(text);
    assert.equal(rest.length, 0);
    assert.equal(issue!.code, 'unknown_category');
    assert.equal(issue!.line, lineOf(text, 'user.contact.emial'));
    assert.equal(issue!.column, 18);
    assert.equal(issue!.path, 'collection[3].categories[0]');
    assert.equal(
      formatIssue(issue!),
      `pledge.yaml:${issue!.line}:18: error: collection[3].categories[0]: unknown category "user.contact.emial" — did you mean "user.contact.email"?`,
    );
  });

  test('an unknown key, with the key probably meant', () => {
    const text = edited('    trigger: account_closed', '    triger: account_closed');
    const issues = errorsOf(text);
    assert.equal(issues.length, 1, 'the typo is reported once, not also as a missing "trigger"');
    const unknown = issues.find((issue) => issue.code === 'unknown_key')!;
    assert.equal(unknown.path, 'retention[0].triger');
    assert.equal(unknown.suggestion, 'did you mean "trigger"?');
    assert.equal(unknown.line, lineOf(text, 'triger:'));
    assert.equal(unknown.column, 5);
  });

  test('a wrong type', () => {
    const issue = errorsOf(edited('minimum_age: 13', 'minimum_age: thirteen'))[0]!;
    assert.equal(issue.path, 'children.minimum_age');
    assert.match(issue.message, /expected a whole number, got text "thirteen"/);
  });

  test('a value outside its list of words', () => {
    const issue = errorsOf(edited('legal_basis: legitimate_interest\n    categories: [user.device, ', 'legal_basis: legit_interest\n    categories: [user.device, '))[0]!;
    assert.equal(issue.code, 'invalid_value');
    assert.equal(issue.suggestion, 'did you mean "legitimate_interest"?');
  });

  test('a dangling reference to a purpose', () => {
    const text = edited('opts_out_of: [marketing, analytics]', 'opts_out_of: [marketing, analytic]');
    const issue = errorsOf(text)[0]!;
    assert.equal(issue.code, 'unknown_purpose');
    assert.equal(issue.path, 'signals.gpc.opts_out_of[1]');
    assert.equal(issue.suggestion, 'did you mean "analytics"?');
  });

  test('a missing required key names the key', () => {
    const issue = errorsOf(edited(/\n {4}duration: 90 days/, ''))[0]!;
    assert.equal(issue.code, 'missing_key');
    assert.match(issue.message, /missing required key "duration"/);
    assert.equal(issue.path, 'retention[2]');
  });

  test('malformed YAML', () => {
    const issue = errorsOf('pledge: 1\npolicy: [unclosed\norganization: x\n')[0]!;
    assert.equal(issue.code, 'yaml_syntax');
    assert.ok(issue.line >= 2);
  });

  test('duplicate keys are an error, not a silent overwrite', () => {
    const issue = errorsOf(edited('sharing:\n  sells_personal_data: false', 'sharing:\n  sells_personal_data: false\n  sells_personal_data: true'))[0]!;
    assert.equal(issue.code, 'yaml_syntax');
    assert.match(issue.message, /unique/i);
  });

  test('several YAML documents in one file', () => {
    assert.equal(errorsOf(`${DEMO}\n---\npledge: 1\n`)[0]!.code, 'yaml_syntax');
  });

  test('an empty file, or one with only comments', () => {
    assert.equal(errorsOf('')[0]!.code, 'empty_file');
    assert.equal(errorsOf('# nothing here\n\n')[0]!.code, 'empty_file');
  });

  test('a list or a scalar at the top level', () => {
    assert.equal(errorsOf('- a\n- b\n')[0]!.code, 'not_a_mapping');
    assert.equal(errorsOf('just text\n')[0]!.code, 'not_a_mapping');
  });

  test('text that is not UTF-8, located', () => {
    const bytes = Buffer.concat([Buffer.from('pledge: 1\npolicy:\n  version: "'), Buffer.from([0xc3, 0x28]), Buffer.from('"\n')]);
    const issue = loadPolicyText(bytes, 'latin1.yaml').issues[0]!;
    assert.equal(issue.code, 'not_utf8');
    assert.equal(issue.line, 3);
    assert.equal(issue.column, 14, 'the column of the first invalid byte');
  });

  test('a 50 MB file is refused before it is read', () => {
    const directory = temporaryDirectory();
    try {
      const file = path.join(directory.path, 'huge.yaml');
      writeFileSync(file, Buffer.alloc(50 * 1024 * 1024, 0x20));
      const issue = loadPolicyFile(file).issues[0]!;
      assert.equal(issue.code, 'file_too_large');
      assert.match(issue.message, /50\.0 MB; the limit is 1\.0 MB/);
      assert.ok(MAX_POLICY_BYTES < 50 * 1024 * 1024);
    } finally {
      directory.remove();
    }
  });

  test('a missing file', () => {
    assert.equal(loadPolicyFile('/nonexistent/pledge.yaml').issues[0]!.code, 'file_not_found');
  });

  test('an alias bomb is stopped', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let level = 0; level < 8; level++) bomb.push(`${'b'.repeat(level + 1)}: &${'b'.repeat(level + 1)} [${Array(10).fill(`*${level === 0 ? 'a' : 'b'.repeat(level)}`).join(', ')}]`);
    const issues = errorsOf(bomb.join('\n'));
    assert.equal(issues[0]!.code, 'yaml_syntax');
  });

  test('requirePolicy throws a PledgeError carrying the issues', () => {
    assert.throws(
      () => requirePolicy(loadPolicyText(edited('legal_basis: consent', 'legal_basis: consnt'), 'pledge.yaml')),
      (error: unknown) => error instanceof PledgeError && error.code === 'policy_invalid' && Array.isArray(error.details?.issues) && /pledge\.yaml:\d+:\d+/.test(error.message),
    );
    assert.throws(() => requirePolicy(loadPolicyText('', 'pledge.yaml')), (error: unknown) => error instanceof PledgeError && error.code === 'policy_unreadable');
  });
});

describe('cross-checks', () => {
  const codes = (text: string) => errorsOf(text).map((issue) => issue.code);

  test('a consent-based purpose cannot be opt-out', () => {
    const text = edited('    legal_basis: consent\n', '    legal_basis: consent\n    choice: opt_out\n');
    assert.deepEqual(codes(text), ['consent_not_opt_in']);
  });

  test('a collected category with no retention rule', () => {
    const text = edited('categories: [user.device, user.behavior.browsing_history]\n    duration: 90 days', 'categories: [user.device.ip_address, user.device.browser, user.behavior.browsing_history]\n    duration: 90 days');
    const issues = errorsOf(text);
    assert.deepEqual(issues.map((issue) => issue.code), ['no_retention_rule']);
    assert.match(issues[0]!.message, /"user\.device\.cookie_id" is collected but no retention rule covers it/);
    assert.equal(issues[0]!.path, 'collection[4].categories[1]');
  });

  test('a recipient receiving a category none of its purposes allows', () => {
    const text = edited('categories: [user.name, user.contact.address, user.contact.phone_number]', 'categories: [user.name, user.contact.address, user.contact.phone_number, user.device.ip_address]');
    const issues = errorsOf(text);
    assert.deepEqual(issues.map((issue) => issue.code), ['recipient_category_not_allowed']);
    assert.match(issues[0]!.message, /recipient "carrier" receives "user\.device\.ip_address"/);
  });

  test('a disclosure purpose that no recipient serves, at the line of its flag', () => {
    const text = edited('    description: Count visits and popular pages to improve the shop.\n', '    description: Count visits and popular pages to improve the shop.\n    disclosure: true\n');
    const issues = errorsOf(text);
    assert.deepEqual(issues.map((issue) => issue.code), ['disclosure_without_recipient']);
    assert.equal(issues[0]!.path, 'purposes[3].disclosure');
    assert.equal(issues[0]!.line, lineOf(text, 'disclosure: true'));
    assert.match(issues[0]!.message, /purpose "analytics" is only the passing of data to its recipients, but no recipient serves it/);
    // Served by a recipient, the same flag is fine.
    assert.deepEqual(codes(editedText(text, '    purposes: [legal_compliance]\n', '    purposes: [legal_compliance, analytics]\n')), []);
  });

  test('a cookie may never carry credentials', () => {
    const text = edited('categories: [user.authorization.session]', 'categories: [user.authorization.credentials]');
    assert.deepEqual(codes(text), ['credentials_in_cookie']);
  });

  test('unknown purposes, subjects and sources are each named', () => {
    assert.deepEqual(codes(edited('purpose: marketing\n', 'purpose: marketting\n')), ['unknown_purpose']);
    assert.deepEqual(codes(edited('subjects: [subscriber, customer]', 'subjects: [subscribers, customer]')), ['unknown_subject_kind']);
    assert.deepEqual(codes(edited('partner: payment_gateway', 'partner: payment_gw')), ['unknown_source']);
  });

  test('an empty ISO duration is not a duration', () => {
    for (const empty of ['P', 'PT', 'P1DT']) {
      const issue = errorsOf(edited('lifetime: 7 days', `lifetime: ${empty}`))[0]!;
      assert.equal(issue?.path, 'cookies[1].lifetime', empty);
    }
    assert.deepEqual(errorsOf(edited('lifetime: 7 days', 'lifetime: P1W')), []);
  });

  test('duplicate ids', () => {
    assert.deepEqual(codes(edited('  - id: carrier', '  - id: payment_gateway')), ['duplicate_id']);
    const twice = edited('        duration: 7 years\n', '        duration: 7 years\n      - id: tax_records\n        reason: legal_claims\n        description: Disputes.\n        categories: [user.payment]\n        duration: 7 years\n');
    const issue = errorsOf(twice)[0]!;
    assert.equal(issue.code, 'duplicate_id');
    assert.equal(issue.path, 'retention[1].exceptions[1].id');
  });

  test('a signal cannot opt out of a necessary purpose, and an ignored signal lists none', () => {
    assert.deepEqual(codes(edited('opts_out_of: [marketing, analytics]', 'opts_out_of: [marketing, security]')), ['signal_on_necessary_purpose']);
    assert.deepEqual(codes(edited('  dnt:\n    honoured: false', '  dnt:\n    honoured: false\n    opts_out_of: [marketing]')), ['ignored_signal_with_purposes']);
  });

  test('marketing mail must serve a purpose people can refuse', () => {
    assert.deepEqual(codes(edited('kind: marketing\n    purpose: marketing', 'kind: marketing\n    purpose: order_fulfilment')), ['marketing_without_choice']);
  });

  test('a custom category must extend an existing one', () => {
    const withCategory = (id: string) => edited('collection:\n', `categories:\n  - id: ${id}\n    name: Licence usage\ncollection:\n`);
    assert.deepEqual(codes(withCategory('user.account.licence_usage')), []);
    const issues = errorsOf(withCategory('user.acount.licence_usage'));
    assert.equal(issues[0]!.code, 'unknown_category');
    assert.equal(issues[0]!.suggestion, 'did you mean "user.account"?');
  });

  test('warnings do not block: data collected that no purpose uses', () => {
    const text = edited('categories: [user.contact.address, user.contact.phone_number, user.behavior.purchase_history]', 'categories: [user.contact.address, user.contact.phone_number, user.behavior.purchase_history, user.demographic.gender]')
      .replace('categories: [user.behavior.purchase_history, user.payment]\n    duration: 3 years', 'categories: [user.behavior.purchase_history, user.payment, user.demographic]\n    duration: 3 years');
    const result = loadPolicyText(text, 'pledge.yaml');
    assert.ok(result.policy, 'still valid');
    assert.deepEqual(result.issues.map((issue) => [issue.severity, issue.code]), [['warning', 'collected_but_unused']]);
  });
});
