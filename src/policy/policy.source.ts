import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { PathSegment } from './policy.issues.js';

/**
 * A parsed policy file that still knows where every value came from, so that a problem found
 * at a path (`purposes[2].categories[0]`) can be reported at its line and column.
 */
export interface SourceFile {
  file: string;
  data: unknown;
  /** YAML syntax problems, already placed. */
  syntaxErrors: Array<{ line: number; column: number; message: string; code: string }>;
  positionOf(path: readonly PathSegment[], at?: 'key' | 'value'): { line: number; column: number };
}

export function parseYamlSource(text: string, file: string): SourceFile {
  const lineCounter = new LineCounter();
  const document: Document = parseDocument(text, {
    lineCounter,
    prettyErrors: false,
    uniqueKeys: true,
    strict: true,
    version: '1.2',
    schema: 'core',
  });

  const place = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };

  const syntaxErrors: SourceFile['syntaxErrors'] = [...document.errors, ...document.warnings].map((error) => ({
    ...place(error.pos[0]),
    message: error.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, ''),
    code: error.code,
  }));

  let data: unknown;
  if (document.errors.length === 0) {
    try {
      // maxAliasCount bounds alias expansion ("billion laughs").
      data = document.toJS({ maxAliasCount: 1000 });
    } catch (error) {
      syntaxErrors.push({ line: 1, column: 1, message: (error as Error).message, code: 'ALIAS_LIMIT' });
    }
  }

  function positionOf(path: readonly PathSegment[], at: 'key' | 'value' = 'value') {
    let node: unknown = document.contents;
    let keyNode: unknown;
    for (const segment of path) {
      if (isMap(node)) {
        const pair = node.items.find((item) => isPair(item) && isScalar(item.key) && String(item.key.value) === String(segment));
        if (!pair) break;
        keyNode = pair.key;
        node = pair.value ?? pair.key;
      } else if (isSeq(node) && typeof segment === 'number') {
        const item = node.items[segment];
        if (item === undefined) break;
        keyNode = undefined;
        node = item;
      } else {
        break;
      }
    }
    const target = (at === 'key' && keyNode ? keyNode : node) as Node | null | undefined;
    const offset = target?.range?.[0] ?? 0;
    return place(offset);
  }

  return { file, data, syntaxErrors, positionOf };
}
