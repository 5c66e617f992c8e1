import { PledgeError } from '../core/errors.js';
import { escapeHtml } from '../core/html.js';

/** What a template produces: one subject line and the same message as text and as HTML. */
export interface MailContent {
  subject: string;
  text: string;
  html: string;
}

export interface RenderContext {
  organization: string;
  topicName: string;
  publicUrl: string;
  /** Present on marketing mail: the visible link of every marketing message. */
  unsubscribeUrl?: string;
}

export type TemplateData = Record<string, unknown>;

/**
 * A mail template renders its data into text and HTML. Every value from `data` goes through
 * `escapeHtml` before it reaches the HTML, and through `headerText` before it reaches a
 * header, so a name or subject holding markup or line breaks stays text.
 */
export interface MailTemplate {
  render(data: TemplateData, context: RenderContext): MailContent;
}

/**
 * One line of header text: line breaks and other control characters (header injection:
 * "Hi\r\nBcc: …") become spaces, and it is cut to a sane length.
 */
export function headerText(value: unknown, max = 200): string {
  return String(value ?? '')
    .replace(/[\u0000-\u001f\u007f\u2028\u2029]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, max);
}

function text(data: TemplateData, key: string, fallback = ''): string {
  const value = data[key];
  return value === undefined || value === null ? fallback : String(value);
}

function paragraphs(body: string): string {
  return body
    .split(/\r?\n\s*\r?\n/)
    .map((paragraph) => `<p>${escapeHtml(paragraph).replace(/\r?\n/g, '<br>')}</p>`)
    .join('\n');
}

/** Wraps a body with the footer every message carries (and the unsubscribe link on marketing). */
function layout(subject: string, bodyText: string, bodyHtml: string, context: RenderContext): MailContent {
  const footerText = [`— ${context.organization}`, `Privacy policy: ${context.publicUrl}/policy`];
  const footerHtml = [`<p>— ${escapeHtml(context.organization)}<br><a href="${escapeHtml(`${context.publicUrl}/policy`)}">Privacy policy</a></p>`];
  if (context.unsubscribeUrl) {
    footerText.push(`You receive "${context.topicName}". Unsubscribe: ${context.unsubscribeUrl}`);
    footerHtml.push(`<p>You receive “${escapeHtml(context.topicName)}”. <a href="${escapeHtml(context.unsubscribeUrl)}">Unsubscribe</a></p>`);
  }
  const cleanSubject = headerText(subject);
  return {
    subject: cleanSubject,
    text: `${bodyText}\n\n${footerText.join('\n')}\n`,
    html: `<!doctype html>\n<html><head><meta charset="utf-8"><title>${escapeHtml(cleanSubject)}</title></head><body>\n${bodyHtml}\n<hr>\n${footerHtml.join('\n')}\n</body></html>\n`,
  };
}

/** Free subject and body: service messages, request notices, newsletters. */
const message: MailTemplate = {
  render(data, context) {
    const greeting = data.name !== undefined ? `Hello ${headerText(data.name, 100)},\n\n` : '';
    const body = `${greeting}${text(data, 'body')}`;
    return layout(text(data, 'subject', context.topicName), body, paragraphs(body), context);
  },
};

const verificationCode: MailTemplate = {
  render(data, context) {
    const code = headerText(data.code, 20);
    const body = `Your verification code is ${code}.\n\nIf you did not ask for it, ignore this message.`;
    return layout(`Your verification code`, body, paragraphs(body), context);
  },
};

/** data: version, effectiveDate, versionId, changes (lines), acceptance ('continued_use' | 'explicit'). */
const policyChange: MailTemplate = {
  render(data, context) {
    const version = headerText(data.version, 40);
    const effective = headerText(data.effectiveDate, 40);
    const url = `${context.publicUrl}/policy/versions/${encodeURIComponent(text(data, 'versionId'))}`;
    const changes = Array.isArray(data.changes) ? (data.changes as unknown[]).slice(0, 30).map((line) => headerText(line, 300)) : [];
    const acceptance =
      data.acceptance === 'explicit'
        ? 'We will ask you to accept the new version.'
        : 'If you keep using our services after that date, the new version applies.';
    const intro = `We are updating our privacy policy to version ${version}, effective ${effective}.`;
    const bodyText = [intro, changes.length ? `What changes:\n${changes.map((line) => `- ${line}`).join('\n')}` : '', `Read it: ${url}`, acceptance].filter(Boolean).join('\n\n');
    const bodyHtml = [
      `<p>${escapeHtml(intro)}</p>`,
      changes.length ? `<p>What changes:</p>\n<ul>${changes.map((line) => `<li>${escapeHtml(line)}</li>`).join('')}</ul>` : '',
      `<p><a href="${escapeHtml(url)}">Read the new policy</a></p>`,
      `<p>${escapeHtml(acceptance)}</p>`,
    ]
      .filter(Boolean)
      .join('\n');
    return layout(`${context.organization}: our privacy policy changes on ${effective}`, bodyText, bodyHtml, context);
  },
};

const TEMPLATES = new Map<string, MailTemplate>([
  ['message', message],
  ['verification_code', verificationCode],
  ['policy_change', policyChange],
]);

/** Adds a template (other domains: request notices…). Names are unique. */
export function registerTemplate(name: string, template: MailTemplate): void {
  if (TEMPLATES.has(name)) throw new Error(`mail template "${name}" is already registered`);
  TEMPLATES.set(name, template);
}

export function requireTemplate(name: string): MailTemplate {
  const template = TEMPLATES.get(name);
  if (!template) throw new PledgeError('unknown_template', `no mail template is named "${headerText(name, 60)}" (known: ${[...TEMPLATES.keys()].join(', ')})`);
  return template;
}
