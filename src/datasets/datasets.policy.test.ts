import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { formatIssue } from '../policy/policy.issues.js';
import { loadPolicyText } from '../policy/policy.load.js';
import { datasetEnv, loadConfig } from '../core/config.js';
import { compileDataset, datasetVariableNames } from './datasets.model.js';
import { editedText, errorsOf, lineOf } from '../../test/support/policy-text.js';

const SHOP = readFileSync('examples/shop/pledge.yaml', 'utf8');

const edited = (search: string | RegExp, replacement: string): string => editedText(SHOP, search, replacement);

describe('dataset declarations in the policy', () => {
  test('the shop policy validates with no issue, and its graph compiles children first', () => {
    const result = loadPolicyText(SHOP, 'pledge.yaml');
    assert.deepEqual(result.issues.map(formatIssue), []);
    const model = compileDataset(result.policy!.document.datasets![0]!);
    assert.deepEqual(model.entries, ['customers', 'support_tickets', 'newsletter_signups']);
    const position = (name: string) => model.order.indexOf(name);
    assert.ok(position('order_items') < position('orders') && position('payments') < position('orders') && position('orders') < position('customers'));
    assert.ok(model.undeletable.has('orders') && model.undeletable.has('customers'), 'rows above kept rows are never deleted');
    assert.ok(!model.collections.get('login_history')!.dedupe, 'a collection reached one way streams without a key set');
    assert.ok(model.collections.get('support_tickets')!.dedupe, 'reached by email and by customer: de-duplicated');
  });

  test('a cycle is an error naming both ends, at the reference that closes it', () => {
    const text = edited(
      '      - name: addresses\n        primary_key: [id]\n        timestamp: created_at\n        references:\n          - { field: customer_id, to: customers.id }',
      '      - name: addresses\n        primary_key: [id]\n        timestamp: created_at\n        references:\n          - { field: customer_id, to: customers.id }\n          - { field: order_id, to: orders.id, owner: this }',
    ).replace(
      '      - name: orders\n        primary_key: [id]\n        timestamp: created_at\n        references:\n          - { field: customer_id, to: customers.id }',
      '      - name: orders\n        primary_key: [id]\n        timestamp: created_at\n        references:\n          - { field: customer_id, to: customers.id }\n          - { field: address_id, to: addresses.id }',
    );
    const errors = errorsOf(text);
    const cycle = errors.find((issue) => issue.code === 'reference_cycle');
    assert.ok(cycle, JSON.stringify(errors));
    assert.match(cycle.message, /"addresses"/);
    assert.match(cycle.message, /"orders"/);
    assert.ok([lineOf(text, '{ field: order_id, to: orders.id, owner: this }'), lineOf(text, '{ field: address_id, to: addresses.id }')].includes(cycle.line));
    assert.match(formatIssue(cycle), /^pledge\.yaml:\d+:\d+: error: datasets\[0\]\.collections\[\d\]\.references\[1\]: /);
  });

  test('a dangling reference names the missing collection and the likely one', () => {
    const text = edited('- { field: order_id, to: orders.id }\n        fields:\n          - { name: product_sku', '- { field: order_id, to: order.id }\n        fields:\n          - { name: product_sku');
    const [issue] = errorsOf(text);
    assert.equal(issue!.code, 'dangling_reference');
    assert.equal(issue!.line, lineOf(text, 'to: order.id'));
    assert.match(issue!.message, /"order_items" refers to "order"/);
    assert.equal(issue!.suggestion, 'did you mean "orders"?');
  });

  test('an unreachable collection and a dataset without identities are errors', () => {
    const unreachable = edited('        references:\n          - { field: customer_id, to: customers.id }\n        fields:\n          - { name: ip_address, category: user.device.ip_address, erase: delete_row }', '        fields:\n          - { name: ip_address, category: user.device.ip_address, erase: delete_row }');
    const [issue] = errorsOf(unreachable);
    assert.equal(issue!.code, 'unreachable_collection');
    assert.match(issue!.message, /"login_history" cannot be reached/);
    assert.equal(issue!.line, lineOf(unreachable, '- name: login_history'));

    const noIdentity = SHOP.replace(/, identity: [a-z_]+/g, '');
    assert.deepEqual(errorsOf(noIdentity).map((error) => error.code), ['dataset_without_identity']);
  });

  test('strategies, exceptions and connections are checked', () => {
    assert.deepEqual(errorsOf(edited('erase: fixed, erase_value: "(erased)"', 'erase: fixed')).map((issue) => issue.code), ['missing_erase_value']);
    assert.deepEqual(errorsOf(edited('exception: tax_records }\n          - { name: billing_name', 'exception: tax_record }\n          - { name: billing_name')).map((issue) => [issue.code, issue.suggestion]), [['unknown_exception', 'did you mean "tax_records"?']]);
    assert.deepEqual(errorsOf(edited('{ name: id, category: user.unique_id, identity: user_id }', '{ name: id, category: user.unique_id, identity: user_id, erase: hash }')).map((issue) => issue.code), ['erase_primary_key']);
    assert.deepEqual(errorsOf(edited('env: SHOP_DATABASE_URL', 'env: postgres://user:secret@db/shop')).map((issue) => issue.code), ['invalid_format']);
    assert.deepEqual(errorsOf(edited('- name: orders\n', '- name: "orders; drop table x"\n')).map((issue) => issue.code).slice(0, 1), ['invalid_format']);
    const warnings = loadPolicyText(edited('{ name: gift_message, category: user.content.communications }', '{ name: gift_message, category: user.health }'), 'pledge.yaml').issues;
    assert.deepEqual(warnings.map((issue) => issue.code), ['dataset_category_not_collected']);
    // Rows kept by retention counted from collection must say when they were written.
    const ageless = loadPolicyText(edited('- name: order_items\n        primary_key: [id]\n        timestamp: created_at\n', '- name: order_items\n        primary_key: [id]\n'), 'pledge.yaml').issues;
    assert.deepEqual(ageless.map((issue) => [issue.code, issue.line]), [['retention_without_timestamp', lineOf(SHOP, '- name: order_items')]]);
    assert.match(ageless[0]!.message, /"order_items" declares no timestamp, but "product_sku" is kept by retention counted from collection: it can never expire/);
  });
});

describe('dataset configuration', () => {
  test('only the variables the policy names are read, and HTTP hosts are checked', () => {
    const policy = loadPolicyText(SHOP, 'pledge.yaml').policy!;
    const names = datasetVariableNames(policy.document.datasets);
    assert.deepEqual(names, ['SHOP_DATABASE_URL']);
    assert.deepEqual(datasetEnv(names, { SHOP_DATABASE_URL: 'sqlite:/tmp/shop.db', OTHER_SECRET: 'x' }), { SHOP_DATABASE_URL: 'sqlite:/tmp/shop.db' });
    assert.deepEqual(loadConfig({ PLEDGE_DATASET_HOSTS: 'crm.example.com, 127.0.0.1:8443' }).config.datasetHosts, ['crm.example.com', '127.0.0.1:8443']);
    assert.deepEqual(loadConfig({}).config.datasetHosts, []);
    assert.throws(() => loadConfig({ PLEDGE_DATASET_HOSTS: 'https://crm.example.com/path' }), { code: 'config_invalid' });
  });
});
