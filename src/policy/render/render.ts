import type { Policy } from '../policy.model.js';
import { composePolicyDocument } from './compose.js';
import { toHtml } from './html.js';
import { toMarkdown } from './markdown.js';

/**
 * The human-readable policy, rendered from the same file the engine enforces.
 *
 * @example
 *   const policy = requirePolicy(loadPolicyFile('pledge.yaml'));
 *   writeFileSync('privacy.html', renderPolicy(policy, 'html'));
 */
export type RenderFormat = 'md' | 'html';

export function renderPolicy(policy: Policy, format: RenderFormat): string {
  const doc = composePolicyDocument(policy);
  return format === 'html' ? toHtml(doc) : toMarkdown(doc);
}

export { composePolicyDocument } from './compose.js';
export { sectionText } from './document.js';
export type { Block, Inline, RenderedDocument, Section } from './document.js';
export { toHtml } from './html.js';
export { toMarkdown } from './markdown.js';
