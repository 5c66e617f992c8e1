import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { purposeReadJson } from './read-json.js';
import type { FieldValue, PurposeRead } from './subjects.service.js';

const field = (value: unknown, overrides: Partial<FieldValue> = {}): FieldValue =>
  Object.freeze({ value, source: 'person', partner: null, collectedFor: 'order_fulfilment', collectedAt: '2026-01-02T03:04:05.678Z', updatedAt: '2026-01-02T03:04:05.678Z', ...overrides });

describe('purposeReadJson', () => {
  it('writes what JSON.stringify writes, for every kind of value and category name', () => {
    const read: PurposeRead = {
      subjectId: 'sub_06h3y3wpce19egw9dbmvjpkxj4',
      purpose: 'order_fulfilment',
      fields: {
        'user.name': field('Zoë "Q" O\'Brien \u2028 <script>'),
        'user.contact.address': field({ street: '1 Main St', lines: ['a', 'b'], nested: { deep: [1, 2.5, -0, 1e21] } }),
        'user.behavior.purchase_history': field([{ order: 'o-1', total: 42.5 }], { source: 'partner', partner: 'shop' }),
        '123': field(true),
        'user.account.settings': field(null),
        'emoji \ud83d\ude00 and lone \ud800': field('\u0000\u001f'),
      },
    };
    assert.equal(purposeReadJson(read), JSON.stringify(read));
    assert.deepEqual(JSON.parse(purposeReadJson(read)), JSON.parse(JSON.stringify(read)));
    assert.equal(purposeReadJson({ ...read, fields: {} }), JSON.stringify({ ...read, fields: {} }));
    const forRecipient: PurposeRead = { subjectId: read.subjectId, purpose: read.purpose, recipient: 'sister_shops', fields: read.fields };
    assert.equal(purposeReadJson(forRecipient), JSON.stringify(forRecipient));
  });

  it('reuses a frozen field\'s text, and never keeps the text of a field that can still change', () => {
    const shared = field({ language: 'en' });
    const first = purposeReadJson({ subjectId: 'sub_a', purpose: 'p', fields: { 'user.account.settings': shared } });
    const second = purposeReadJson({ subjectId: 'sub_b', purpose: 'p', fields: { 'user.account.settings': shared } });
    assert.equal(second, first.replace('sub_a', 'sub_b'));

    const mutable: FieldValue = { value: 'before', source: 'person', partner: null, collectedFor: 'p', collectedAt: 'x', updatedAt: 'x' };
    const read: PurposeRead = { subjectId: 'sub_c', purpose: 'p', fields: { 'user.name': mutable } };
    assert.equal(purposeReadJson(read), JSON.stringify(read));
    mutable.value = 'after';
    assert.equal(purposeReadJson(read), JSON.stringify(read));
  });
});
