import type { FieldValue, PurposeRead } from './subjects.service.js';

/**
 * The JSON text of each field answer, made once: readData hands out the same frozen answer for
 * a field until its stored value changes (OpenedField.answer, in the vault's key cache), so a subject read again
 * and again is serialised once per field instead of on every read. Weakly held: an answer no
 * longer cached by the vault takes its text with it.
 */
const fieldTexts = new WeakMap<FieldValue, string>();

function fieldText(field: FieldValue): string {
  let text = fieldTexts.get(field);
  if (text === undefined) {
    text = JSON.stringify(field);
    // Only a frozen answer is known not to change after its text was taken.
    if (Object.isFrozen(field)) fieldTexts.set(field, text);
  }
  return text;
}

/** JSON.stringify(read), to the byte: the same keys in the same order, each field's text reused. */
export function purposeReadJson(read: PurposeRead): string {
  let fields = '';
  for (const category of Object.keys(read.fields)) {
    fields += `${fields === '' ? '' : ','}${JSON.stringify(category)}:${fieldText(read.fields[category]!)}`;
  }
  const recipient = read.recipient === undefined ? '' : `,"recipient":${JSON.stringify(read.recipient)}`;
  return `{"subjectId":${JSON.stringify(read.subjectId)},"purpose":${JSON.stringify(read.purpose)}${recipient},"fields":{${fields}}}`;
}
