import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { loadPolicyText } from '../src/policy/policy.load.js';
import { renderPolicy } from '../src/policy/render/render.js';
import { median, timeMs, type ResultRow } from './support.js';

/**
 * Validate + render (HTML and Markdown) of the largest example policy, in process, after
 * warm-up. Ceiling: parsing the same YAML text alone with the yaml library.
 */
export function benchPolicy(iterations = 300): ResultRow[] {
  const candidates = ['examples/demo/pledge.yaml', ...readdirSync('examples/policies').filter((name) => name.endsWith('.yaml')).map((name) => path.join('examples/policies', name))];
  const largest = candidates.sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
  const text = readFileSync(largest, 'utf8');

  const run = () => {
    const { policy } = loadPolicyText(text, largest);
    if (!policy) throw new Error(`${largest} does not validate`);
    renderPolicy(policy, 'html');
    renderPolicy(policy, 'md');
  };
  for (let i = 0; i < 30; i++) run();
  const samples = Array.from({ length: iterations }, () => timeMs(run));
  for (let i = 0; i < 30; i++) parse(text);
  const ceiling = Array.from({ length: iterations }, () => timeMs(() => parse(text)));

  const measured = median(samples);
  const reference = median(ceiling);
  return [
    {
      benchmark: `validate + render (html, md) of ${path.basename(largest)} (${(text.length / 1024).toFixed(1)} KB), median of ${iterations}`,
      measured: `${measured.toFixed(2)} ms`,
      ceiling: `${reference.toFixed(2)} ms (YAML parse alone)`,
      ratio: `${(measured / reference).toFixed(1)}×`,
      target: '≤ 30 ms',
      verdict: measured <= 30 ? 'pass' : 'FAIL',
    },
  ];
}
