/** Escapes & < > " ' (text and attribute values alike) and replaces control characters. */
export function escapeHtml(value: string): string {
  let result = '';
  let last = 0;
  for (let index = 0; index < value.length; index++) {
    const code = value.charCodeAt(index);
    let replacement: string;
    switch (code) {
      case 38:
        replacement = '&amp;';
        break;
      case 60:
        replacement = '&lt;';
        break;
      case 62:
        replacement = '&gt;';
        break;
      case 34:
        replacement = '&quot;';
        break;
      case 39:
        replacement = '&#39;';
        break;
      default:
        if ((code < 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d) || code === 0x7f) replacement = ' ';
        else continue;
    }
    result += value.slice(last, index) + replacement;
    last = index + 1;
  }
  return last === 0 ? value : result + value.slice(last);
}
