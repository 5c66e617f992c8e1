import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { diffPolicies, diffToJson, formatDiff, isMaterial, type PolicyChange } from './policy.diff.js';
import { loadPolicyText } from './policy.load.js';
import type { Policy } from './policy.model.js';
import { defaultStarterAnswers, renderStarterPolicy } from './policy.init.js';

const DEMO = readFileSync(new URL('../../../examples/demo/pledge.yaml', import.meta.url), 'utf8');

function load(text: string): Policy {
  const result = loadPolicyText(text, 'pledge.yaml');
  assert.ok(result.policy, `policy does not load:\n${result.issues.map((issue) => `${issue.line}: ${issue.message}`).join('\n')}`);
  return result.policy;
}

/** The demo policy with textual edits applied in turn; fails if an edit does not apply. */
function edited(...edits: Array<[search: string | RegExp, replacement: string]>): string {
  let text = DEMO;
  for (const [search, replacement] of edits) {
    const next = text.replace(search, replacement);
    assert.ok(next !== text, `edit ${String(search)} did not apply`);
    text = next;
  }
  return text;
}

const base = load(DEMO);
const diff = (...edits: Array<[string | RegExp, string]>) => diffPolicies(base, load(edited(...edits)));

function only(changes: PolicyChange[]): PolicyChange {
  assert.equal(changes.length, 1, `expected one change, got:\n${formatDiff(changes)}`);
  return changes[0]!;
}

describe('policy diff: no change', () => {
  test('identical policies: no changes, and the text says so', () => {
    const changes = diffPolicies(base, load(DEMO));
    assert.deepEqual(changes, []);
    assert.equal(isMaterial(changes), false);
    assert.equal(formatDiff(changes), 'No semantic changes.');
    assert.deepEqual(diffToJson(changes), {
      material: false,
      counts: { total: 0, material: 0, added: 0, removed: 0, changed: 0 },
      summary: 'No semantic changes.',
      changes: [],
    });
  });

  test('reordering purposes, recipients, cookies, rights and list items is not a change', () => {
    const purposesStart = DEMO.indexOf('purposes:\n  - id: account');
    const recipientsStart = DEMO.indexOf('recipients:');
    const block = DEMO.slice(purposesStart, recipientsStart);
    const items = block.slice('purposes:\n'.length).split(/(?=  - id: )/);
    const reversed = `purposes:\n${[...items].reverse().map((item) => (item.endsWith('\n\n') ? item.slice(0, -1) : item.endsWith('\n') ? item : `${item}\n`)).join('')}\n`;
    const text = edited(
      [block, reversed],
      ['categories: [user.name, user.contact.email, user.behavior.purchase_history]\n    profiling: true', 'categories: [user.behavior.purchase_history, user.contact.email, user.name]\n    profiling: true'],
      ['opts_out_of: [marketing, analytics]', 'opts_out_of: [analytics, marketing]'],
      ['regions: [US, CA]', 'regions: [CA, US]'],
    );
    assert.deepEqual(load(text).document.purposes.map((purpose) => purpose.id), [...base.document.purposes.map((purpose) => purpose.id)].reverse());
    assert.deepEqual(diffPolicies(base, load(text)), []);
  });

  test('the same duration or deadline written differently is not a change', () => {
    assert.deepEqual(diff(['duration: 90 days', 'duration: P90D'], ['lifetime: 13 months', 'lifetime: P13M']), []);
    assert.deepEqual(diff(['deadline: 2 business days', 'deadline: 2 business day']), []);
    assert.deepEqual(diff(['duration: 3 years', 'duration: 36 months']), []);
  });
});

describe('policy diff: purposes', () => {
  test('a purpose gaining a category is one material change', () => {
    const change = only(diff(['categories: [user.name, user.contact.email, user.behavior.purchase_history]', 'categories: [user.name, user.contact.email, user.behavior.purchase_history, user.contact.phone_number]']));
    assert.equal(change.element, 'purpose');
    assert.equal(change.id, 'marketing');
    assert.equal(change.change, 'added');
    assert.equal(change.path, 'purposes.marketing.categories');
    assert.equal(change.summary, 'Purpose "marketing" may now use "user.contact.phone_number"');
    assert.equal(change.material, true);
    assert.ok(change.reason);
    assert.equal(change.after, 'user.contact.phone_number');
  });

  test('a broader category widens; a narrower one does not', () => {
    const wider = only(diff(['categories: [user.name, user.contact.email, user.behavior.purchase_history]', 'categories: [user.name, user.contact, user.behavior.purchase_history]']));
    assert.equal(wider.summary, 'Purpose "marketing" may now use "user.contact"');
    assert.equal(wider.material, true);
    const narrower = only(diff(['categories: [user.device, user.behavior.browsing_history]\n  - id: security', 'categories: [user.device.cookie_id, user.behavior.browsing_history]\n  - id: security']));
    assert.equal(narrower.change, 'removed');
    assert.equal(narrower.material, false);
    assert.match(narrower.summary, /only part of "user\.device" \("user\.device\.cookie_id"\)/);
  });

  test('a new purpose is material; a removed one is not', () => {
    const added = diff(['  - id: legal_compliance', '  - id: research\n    name: Research\n    description: Study how books are read.\n    legal_basis: consent\n    categories: [user.behavior.purchase_history]\n  - id: legal_compliance']);
    assert.equal(only(added).material, true);
    assert.equal(added[0]!.change, 'added');
    const removedDiff = diffPolicies(load(edited(['  - id: legal_compliance', '  - id: research\n    name: Research\n    description: Study how books are read.\n    legal_basis: consent\n    categories: [user.behavior.purchase_history]\n  - id: legal_compliance'])), base);
    assert.equal(only(removedDiff).change, 'removed');
    assert.equal(removedDiff[0]!.material, false);
  });

  test('legal basis changes are material; choice is material only toward less control', () => {
    const changes = diff(['legal_basis: legitimate_interest\n    categories: [user.device, user.behavior.browsing_history]', 'legal_basis: consent\n    categories: [user.device, user.behavior.browsing_history]']);
    assert.deepEqual(changes.map((change) => [change.path, change.material]), [
      ['purposes.analytics.legal_basis', true],
      ['purposes.analytics.choice', false],
    ]);
    // A necessary purpose cannot be opted out of by GPC, so it leaves opts_out_of too: that
    // removal is no weakening of its own.
    const less = diff(
      ['legal_basis: legitimate_interest\n    categories: [user.device, user.behavior.browsing_history]', 'legal_basis: legitimate_interest\n    choice: none\n    categories: [user.device, user.behavior.browsing_history]'],
      ['opts_out_of: [marketing, analytics]', 'opts_out_of: [marketing]'],
    );
    assert.deepEqual(less.map((change) => [change.path, change.material]), [
      ['purposes.analytics.choice', true],
      ['signals.gpc.opts_out_of', false],
    ]);
    assert.equal(less[0]!.summary, 'Purpose "analytics" is now none (was opt_out)');
    // An explicit choice equal to the default is no change.
    assert.deepEqual(diff(['legal_basis: legitimate_interest\n    categories: [user.device, user.behavior.browsing_history]', 'legal_basis: legitimate_interest\n    choice: opt_out\n    categories: [user.device, user.behavior.browsing_history]']), []);
  });

  test('profiling switched on is material, off is not; wording is never material', () => {
    const on = only(diff(['legal_basis: legitimate_interest\n    categories: [user.device, user.behavior.browsing_history]', 'legal_basis: legitimate_interest\n    categories: [user.device, user.behavior.browsing_history]\n    automated_decisions: true']));
    assert.equal(on.material, true);
    assert.equal(only(diff(['    profiling: true\n', ''])).material, false);
    const wording = only(diff(['Count visits and popular pages to improve the shop.', 'Count visits to improve the shop.']));
    assert.equal(wording.path, 'purposes.analytics.description');
    assert.equal(wording.material, false);
  });

  test('a purpose marked disclosure: gaining the flag narrows it, losing it is material', () => {
    const flag: [string, string] = ['    legal_basis: legal_obligation\n', '    legal_basis: legal_obligation\n    disclosure: true\n'];
    const gained = only(diff(flag));
    assert.equal(gained.path, 'purposes.legal_compliance.disclosure');
    assert.equal(gained.material, false);
    assert.equal(gained.summary, 'Purpose "legal_compliance" is now only the passing of data to its recipients');
    const lost = only(diffPolicies(load(edited(flag)), base));
    assert.equal(lost.path, 'purposes.legal_compliance.disclosure');
    assert.equal(lost.material, true);
    assert.match(lost.reason!, /opting out of them no longer stops it/);
    assert.deepEqual([lost.before, lost.after], [true, false]);
  });
});

describe('policy diff: collection and recipients', () => {
  test('a newly collected category and a new source are material', () => {
    const changes = diff(['categories: [user.contact.address, user.contact.phone_number, user.behavior.purchase_history]', 'categories: [user.contact.address, user.contact.phone_number, user.behavior.purchase_history, user.contact.url]']);
    // user.contact.url is covered by the purpose and retention rules that name user.contact.
    const change = only(changes);
    assert.equal(change.element, 'collection');
    assert.equal(change.id, 'user.contact.url');
    assert.equal(change.change, 'added');
    assert.equal(change.material, true);
    const source = only(diff(['    source: person\n    method: Newsletter form', '    source: staff\n    method: Newsletter form']));
    // user.contact.email still comes from the person at sign-up, so only "staff" is new.
    assert.equal(source.path, 'collection.user.contact.email.sources');
    assert.equal(source.material, true);
    assert.match(source.summary, /now also obtained from staff/);
  });

  test('collecting about a new kind of person is material; regrouping entries is not', () => {
    const about = diff(['subjects: [visitor, customer]\n    source: automatic', 'subjects: [visitor, customer, subscriber]\n    source: automatic']);
    assert.deepEqual(about.map((change) => [change.id, change.path.endsWith('.subjects'), change.material]), [
      ['user.behavior.browsing_history', true, true],
      ['user.device.browser', true, true],
      ['user.device.cookie_id', true, true],
      ['user.device.ip_address', true, true],
    ]);
    // Moving a category to another entry with the same source and people changes nothing.
    assert.deepEqual(diff(
      ['categories: [user.name, user.contact.email, user.account.username, user.authorization.credentials]', 'categories: [user.name, user.account.username, user.authorization.credentials]'],
      ['  - id: checkout\n', '  - id: signup_email\n    categories: [user.contact.email]\n    subjects: [customer]\n    source: person\n  - id: checkout\n'],
    ), []);
  });

  test('recipients: new one, more categories, lost opt-out are material; fewer regions are not', () => {
    const categories = only(diff(['categories: [user.name, user.payment]\n    regions: [US]', 'categories: [user.name, user.payment, user.contact.email]\n    regions: [US]']));
    assert.deepEqual([categories.path, categories.material], ['recipients.payment_gateway.categories', true]);
    const regions = only(diff(['regions: [US, CA]', 'regions: [US]']));
    assert.deepEqual([regions.change, regions.material], ['removed', false]);
    const moreRegions = only(diff(['regions: [US, CA]', 'regions: [US, CA, MX]']));
    assert.equal(moreRegions.material, true);
    const role = only(diff(['role: processor\n    purposes: [order_fulfilment]\n    categories: [user.name, user.contact.address', 'role: controller\n    purposes: [order_fulfilment]\n    categories: [user.name, user.contact.address']));
    assert.deepEqual([role.path, role.material], ['recipients.carrier.role', true]);
    const added = only(diff(['\n\nsharing:', '\n  - id: mailer\n    name: Mail service\n    role: processor\n    purposes: [marketing]\n    categories: [user.contact.email]\n\nsharing:']));
    assert.deepEqual([added.element, added.change, added.material], ['recipient', 'added', true]);
  });

  test('selling personal data is material; stopping is not', () => {
    const selling = only(diff(['sells_personal_data: false', 'sells_personal_data: true']));
    assert.deepEqual([selling.id, selling.material], ['sells_personal_data', true]);
    const aggregates = only(diff(['sells_personal_data: false', 'sells_personal_data: false\n  aggregate_statistics:\n    shared: true']));
    assert.equal(aggregates.material, true);
  });
});

describe('policy diff: retention', () => {
  test('shortened retention is not material; lengthened is', () => {
    const shorter = only(diff(['duration: 3 years', 'duration: 2 years']));
    assert.equal(shorter.path, 'retention.orders.duration');
    assert.equal(shorter.material, false);
    assert.equal(shorter.summary, 'Retention rule "orders" shortened from 3 years to 2 years');
    const longer = only(diff(['duration: 90 days', 'duration: 6 months']));
    assert.equal(longer.material, true);
  });

  test('trigger changes and delete → anonymize are material; anonymize → delete is not', () => {
    const trigger = only(diff(['trigger: account_closed', 'trigger: last_activity']));
    assert.deepEqual([trigger.path, trigger.material], ['retention.account_data.trigger', true]);
    const anonymize = only(diff(['duration: 90 days\n    trigger: collected\n    action: delete', 'duration: 90 days\n    trigger: collected\n    action: anonymize']));
    assert.equal(anonymize.material, true);
    const remove = only(diff(['action: anonymize', 'action: delete']));
    assert.equal(remove.material, false);
  });

  test('exceptions: lengthened or added is material', () => {
    const longer = only(diff(['        duration: 7 years', '        duration: 10 years']));
    assert.deepEqual([longer.path, longer.material], ['retention.orders.exceptions.tax_records.duration', true]);
  });

  test('a rule removed is material only when data may be kept longer', () => {
    // Splitting browsing logs out of a longer rule: the 90-day rule removed, data now under 3 years.
    const longer = diff(
      ['  - id: browsing_logs\n    categories: [user.device, user.behavior.browsing_history]\n    duration: 90 days\n    trigger: collected\n    action: delete\n', ''],
      ['categories: [user.behavior.purchase_history, user.payment]', 'categories: [user.behavior.purchase_history, user.payment, user.device, user.behavior.browsing_history]'],
    );
    const removed = longer.find((change) => change.path === 'retention.browsing_logs')!;
    assert.equal(removed.change, 'removed');
    assert.equal(removed.material, true);
    // Renaming a rule: removed and added, neither keeps anything longer.
    const renamed = diff(['  - id: browsing_logs', '  - id: logs']);
    assert.deepEqual(renamed.map((change) => [change.change, change.material]), [['removed', false], ['added', false]]);
  });
});

describe('policy diff: rights, communications, cookies, signals and the rest', () => {
  test('rights: removed or slower is material; faster or added is not', () => {
    const removed = only(diff(['    - type: restriction\n      channels: [{ kind: privacy_center }]\n      deadline: 30 days\n', '']));
    assert.deepEqual([removed.element, removed.id, removed.change, removed.material], ['right', 'restriction', 'removed', true]);
    const slower = only(diff(['deadline: 2 business days', 'deadline: 3 days']));
    assert.equal(slower.material, true, '3 calendar days is longer than 2 business days (2.8)');
    const faster = only(diff(['deadline: 2 business days', 'deadline: 2 days']));
    assert.equal(faster.material, false);
    const stricter = only(diff(['      deadline: 30 days\n    - type: objection', '      deadline: 30 days\n      verification: signed_in\n    - type: objection']));
    assert.deepEqual([stricter.path, stricter.material], ['rights.requests.restriction.verification', true]);
  });

  test('channels: a kind removed is material, a changed address is not', () => {
    const kind = only(diff(['channels: [{ kind: account }, { kind: privacy_center }]', 'channels: [{ kind: account }]']));
    assert.deepEqual([kind.path, kind.material], ['rights.requests.correction.channels.privacy_center', true]);
    const address = diff([/address: privacy@books\.example\.com/g, 'address: rights@books.example.com']);
    assert.ok(address.length > 0);
    assert.ok(address.every((change) => !change.material));
  });

  test('communications, cookies and signals', () => {
    const marketing = only(diff(['  - id: newsletter\n', '  - id: offers\n    name: Offers\n    kind: marketing\n    purpose: marketing\n    channels: [email]\n  - id: newsletter\n']));
    assert.deepEqual([marketing.element, marketing.material], ['communication', true]);
    const cookie = only(diff(['lifetime: 13 months', 'lifetime: 2 years']));
    assert.deepEqual([cookie.id, cookie.material], ['nw_analytics', true]);
    const necessaryCookie = only(diff(['lifetime: 7 days', 'lifetime: 30 days']));
    assert.deepEqual([necessaryCookie.id, necessaryCookie.material], ['nw_cart', false]);
    const gpc = only(diff(['honoured: true\n    opts_out_of: [marketing, analytics]', 'honoured: false']));
    assert.deepEqual([gpc.element, gpc.id, gpc.material], ['signal', 'gpc', true]);
    const fewer = only(diff(['opts_out_of: [marketing, analytics]', 'opts_out_of: [marketing]']));
    assert.deepEqual([fewer.path, fewer.change, fewer.material], ['signals.gpc.opts_out_of', 'removed', true]);
  });

  test('children, storage, security, change policy, organization', () => {
    assert.equal(only(diff(['minimum_age: 13', 'minimum_age: 12'])).material, true);
    assert.equal(only(diff(['minimum_age: 13', 'minimum_age: 16'])).material, false);
    assert.equal(only(diff(['  regions: [US]\n  transfers:', '  regions: [US, IE]\n  transfers:'])).material, true);
    assert.equal(only(diff(['mechanism: scc', 'mechanism: derogation'])).material, true);
    assert.equal(only(diff(['    - id: staff_training\n      kind: organizational\n      description: Staff with access to customer data are trained every year.\n', ''])).material, true);
    assert.equal(only(diff(['    - audience: registered\n      channel: email\n', ''])).material, true);
    assert.equal(only(diff(['advance_notice: 30 days', 'advance_notice: 14 days'])).material, true);
    assert.equal(only(diff(['legal_name: Northwind Books Ltd.', 'legal_name: Northwind Holdings Ltd.'])).material, true);
    const contact = only(diff(['email: security@books.example.com', 'email: infosec@books.example.com']));
    assert.deepEqual([contact.element, contact.id, contact.material], ['organization', 'contacts.security', false]);
  });

  test('version and effective date are reported, never material', () => {
    const changes = diff(['version: "1.0"', 'version: "1.1"'], ['effective_date: 2026-01-15', 'effective_date: 2026-03-01']);
    assert.deepEqual(changes.map((change) => [change.element, change.id, change.material]), [
      ['policy', 'version', false],
      ['policy', 'effective_date', false],
    ]);
    assert.equal(isMaterial(changes), false);
  });
});

describe('policy diff: output', () => {
  const changes = diff(
    ['version: "1.0"', 'version: "1.1"'],
    ['categories: [user.name, user.contact.email, user.behavior.purchase_history]', 'categories: [user.name, user.contact.email, user.behavior.purchase_history, user.contact.phone_number]'],
    ['duration: 3 years', 'duration: 2 years'],
  );

  test('the order is fixed and does not depend on the order of the files', () => {
    assert.deepEqual(changes.map((change) => change.path), ['policy.version', 'purposes.marketing.categories', 'retention.orders.duration']);
    assert.deepEqual(diffPolicies(base, load(edited(['version: "1.0"', 'version: "1.1"'], ['categories: [user.name, user.contact.email, user.behavior.purchase_history]', 'categories: [user.contact.phone_number, user.name, user.contact.email, user.behavior.purchase_history]'], ['duration: 3 years', 'duration: 2 years']))), changes);
  });

  test('formatDiff: one line per change, material marked, a count at the end', () => {
    const lines = formatDiff(changes).split('\n');
    assert.equal(lines.length, 4);
    assert.match(lines[0]!, /^ {10} ~ policy\.version: Policy version changed from "1\.0" to "1\.1"$/);
    assert.match(lines[1]!, /^\[material\] \+ purposes\.marketing\.categories: Purpose "marketing" may now use "user\.contact\.phone_number" \(.+\)$/);
    assert.match(lines[2]!, /^ {10} ~ retention\.orders\.duration: /);
    assert.equal(lines[3], '3 changes, 1 material');
    assert.equal(formatDiff(changes.slice(1, 2)).split('\n').at(-1), '1 change, 1 material');
  });

  test('diffToJson: counts and stable, JSON-able changes', () => {
    const json = diffToJson(changes);
    assert.equal(json.material, true);
    assert.deepEqual(json.counts, { total: 3, material: 1, added: 1, removed: 0, changed: 2 });
    assert.equal(json.summary, '3 changes, 1 material');
    assert.deepEqual(JSON.parse(JSON.stringify(json)), json);
    assert.deepEqual(Object.keys(json.changes[1]!), ['element', 'id', 'change', 'path', 'summary', 'material', 'reason', 'after']);
    assert.deepEqual(json.changes[0], {
      element: 'policy', id: 'version', change: 'changed', path: 'policy.version',
      summary: 'Policy version changed from "1.0" to "1.1"', material: false, before: '1.0', after: '1.1',
    });
    assert.equal(JSON.stringify(diffToJson(changes)), JSON.stringify(json));
  });
});

describe('policy diff: starter policies', () => {
  test('adding marketing to a starter policy is material; the reverse is not', () => {
    const without = load(renderStarterPolicy({ ...defaultStarterAnswers, sendsMarketing: false }, { today: new Date('2026-01-01') }));
    const withMarketing = load(renderStarterPolicy(defaultStarterAnswers, { today: new Date('2026-01-01') }));
    const adding = diffPolicies(without, withMarketing);
    assert.equal(isMaterial(adding), true);
    assert.ok(adding.some((change) => change.element === 'purpose' && change.id === 'marketing' && change.change === 'added' && change.material));
    assert.ok(adding.some((change) => change.element === 'communication' && change.id === 'newsletter' && change.material));
    const dropping = diffPolicies(withMarketing, without);
    assert.deepEqual(dropping.filter((change) => change.material).map((change) => change.path), []);
  });
});
