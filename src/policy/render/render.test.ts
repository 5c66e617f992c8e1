import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parse, stringify } from 'yaml';
import { loadPolicyFile, loadPolicyText, requirePolicy } from '../policy.load.js';
import type { Policy } from '../policy.model.js';
import { safeHref, type Block, type Section } from './document.js';
import { escapeHtml } from './html.js';
import { escapeMarkdown } from './markdown.js';
import { composePolicyDocument, renderPolicy, sectionText } from './render.js';

const DEMO_PATH = 'examples/demo/pledge.yaml';
const FIXED_IDS = [
  'introduction',
  'who-we-are',
  'what-we-collect',
  'how-we-use',
  'who-receives',
  'cookies',
  'retention',
  'your-rights',
  'communications',
  'privacy-signals',
  'children',
  'transfers',
  'security',
  'changes',
];

const demo = requirePolicy(loadPolicyFile(DEMO_PATH));

/** A policy from the demo YAML after `edit` changed its parsed form. */
function demoWith(edit: (document: Record<string, any>) => void): Policy {
  const document = parse(readFileSync(DEMO_PATH, 'utf8')) as Record<string, any>;
  edit(document);
  return requirePolicy(loadPolicyText(stringify(document), 'edited.yaml'));
}

function section(policy: Policy, id: string): Section {
  const found = composePolicyDocument(policy).sections.find((candidate) => candidate.id === id);
  assert.ok(found, `section ${id} exists`);
  return found;
}

/** The blocks under a subheading of a section, up to the next subheading. */
function under(value: Section, title: string): string {
  const start = value.blocks.findIndex((block) => block.type === 'heading' && block.text === title);
  assert.ok(start >= 0, `subheading "${title}" in ${value.id}`);
  const rest = value.blocks.slice(start + 1);
  const end = rest.findIndex((block) => block.type === 'heading');
  return sectionText({ id: value.id, title, blocks: end === -1 ? rest : rest.slice(0, end) });
}

function htmlSection(html: string, id: string): string {
  const start = html.indexOf(`<section id="${id}"`);
  assert.ok(start >= 0, `HTML section ${id}`);
  return html.slice(start, html.indexOf('</section>', start));
}

function markdownSection(markdown: string, id: string): string {
  const start = markdown.indexOf(`<a id="${id}"></a>`);
  assert.ok(start >= 0, `Markdown section ${id}`);
  const next = markdown.indexOf('<a id="', start + 1);
  return markdown.slice(start, next === -1 ? undefined : next);
}

function idsInOrder(text: string, pattern: RegExp): string[] {
  return [...text.matchAll(pattern)].map((match) => match[1]!);
}

test('every section is present, in order, in the document, the HTML page and the Markdown', () => {
  const ids = composePolicyDocument(demo).sections.map((value) => value.id);
  assert.deepEqual(ids, [...FIXED_IDS, 'contact']);
  const html = renderPolicy(demo, 'html');
  assert.deepEqual(idsInOrder(html, /<section id="([^"]+)" aria-labelledby="\1-title">\n<h2 id="\1-title">/g), ids);
  assert.deepEqual(idsInOrder(html, /<li><a href="#([^"]+)">/g), ids, 'the table of contents links every section');
  const markdown = renderPolicy(demo, 'md');
  assert.deepEqual(idsInOrder(markdown, /^<a id="([^"]+)"><\/a>\n## \S/gm), ids);
  assert.deepEqual(idsInOrder(markdown, /^\d+\. \[[^\]]+\]\(#([^)]+)\)$/gm), ids);
});

test('notices get their own sections, as written, between changes and contact', () => {
  const policy = demoWith((document) => {
    document.notices = [
      { id: 'forums', title: 'Public forums', text: 'Posts in our forums are public.\n\nDo not post personal details.' },
      { id: 'links', title: 'Links to other sites', text: 'Other sites have their own policies; see https://example.com/about-cookies. Not javascript:alert(1).' },
    ];
  });
  const ids = composePolicyDocument(policy).sections.map((value) => value.id);
  assert.deepEqual(ids, [...FIXED_IDS, 'notice-forums', 'notice-links', 'contact']);
  const forums = section(policy, 'notice-forums');
  assert.equal(forums.title, 'Public forums');
  assert.deepEqual(forums.blocks.map((block) => block.type === 'paragraph' && block.content[0]!.text), ['Posts in our forums are public.', 'Do not post personal details.']);
  assert.ok(renderPolicy(policy, 'html').includes('<section id="notice-links" aria-labelledby="notice-links-title">\n<h2 id="notice-links-title">Links to other sites</h2>'));
  assert.ok(renderPolicy(policy, 'md').includes('<a id="notice-forums"></a>\n## Public forums\n\nPosts in our forums are public.\n\nDo not post personal details.'));
  // Addresses written in the text become links (without the closing full stop); nothing else does.
  const links = htmlSection(renderPolicy(policy, 'html'), 'notice-links');
  assert.ok(links.includes('see <a href="https://example.com/about-cookies">https://example.com/about-cookies</a>. Not javascript:alert(1).'));
  assert.ok(markdownSection(renderPolicy(policy, 'md'), 'notice-links').includes('see [https://example.com/about-cookies](https://example.com/about-cookies). Not javascript:alert(1).'));
});

test('the demo policy: each key fact is in the section a reader looks for it', () => {
  const intro = sectionText(section(demo, 'introduction'));
  assert.match(intro, /version 1\.0/);
  assert.match(intro, /15 January 2026/);
  assert.match(intro, /Newsletter subscribers/);

  const who = sectionText(section(demo, 'who-we-are'));
  assert.match(who, /Northwind Books Ltd\./);
  assert.match(who, /12 Harbour Street, Portland, ME 04101, USA/);
  assert.match(who, /The United States/);

  const collect = section(demo, 'what-we-collect');
  assert.match(under(collect, 'Information you give us'), /Name, email address, username or user ID, and password\*?\*?, about customers\..*You must provide it for “Your account”/);
  assert.match(under(collect, 'Information you give us'), /Email address, about newsletter subscribers and customers\..*optional/);
  assert.match(under(collect, 'Information collected automatically'), /IP address/);
  assert.match(under(collect, 'Information from our partners'), /Payment records, about customers\. From Payment gateway/);

  const use = section(demo, 'how-we-use');
  const newsletter = under(use, 'Newsletter and offers');
  assert.match(newsletter, /Legal basis: Your consent\./);
  assert.match(newsletter, /Only with your consent/);
  assert.match(newsletter, /Profiling:/);
  assert.match(newsletter, /Global Privacy Control/);
  assert.match(under(use, 'Shop analytics'), /You can opt out at any time\./);
  assert.match(under(use, 'Your account'), /Necessary/);

  const receives = section(demo, 'who-receives');
  assert.match(under(receives, 'Authorities'), /Law enforcement and courts.*When: Only when required by law, court order or other legal process\./);
  assert.match(under(receives, 'Service providers'), /Payment gateway.*Safeguards: Bound by a data processing agreement and PCI DSS\./);
  assert.match(under(receives, 'Service providers'), /Delivery carriers.*Where: the United States and Canada\./);
  assert.match(sectionText(receives), /We do not sell your personal information/);

  const rights = section(demo, 'your-rights');
  assert.match(under(rights, 'See your information'), /We respond within 30 days\./);
  assert.match(under(rights, 'See your information'), /a further 30 days/);
  assert.match(under(rights, 'See your information'), /sending a code to your email address/);
  assert.match(under(rights, 'Withdraw your consent'), /We respond within 2 business days\./);
  assert.match(sectionText(rights), /Business days are Monday to Friday, except US federal public holidays\./);

  const retention = sectionText(section(demo, 'retention'));
  assert.match(retention, /30 days after you close your account\tDeleted/);
  assert.match(retention, /3 years after collection\tAnonymised/);
  assert.match(retention, /Payment records: kept for 7 years after collection, because the law requires it: invoices are kept/);

  const communications = sectionText(section(demo, 'communications'));
  assert.match(communications, /Every marketing message has an unsubscribe link\./);
  assert.match(communications, /Opting out of marketing does not stop service messages/);

  const signals = sectionText(section(demo, 'privacy-signals'));
  assert.match(signals, /We honour Global Privacy Control.*“Newsletter and offers” and “Shop analytics”/);
  assert.match(signals, /We do not respond to Do Not Track/);

  assert.match(sectionText(section(demo, 'children')), /at least 13 years old/);
  assert.match(sectionText(section(demo, 'transfers')), /From the European Union to the United States, protected by standard contractual clauses\./);
  assert.match(under(section(demo, 'security'), 'Technical measures'), /TLS/);
  assert.match(under(section(demo, 'security'), 'Organisational measures'), /trained every year/);
  assert.match(sectionText(section(demo, 'changes')), /at least 30 days before they take effect/);
  assert.match(sectionText(section(demo, 'contact')), /help@books\.example\.com.*\+1 207 555 0100/);
});

test('an affiliate people can opt out of: how to opt out, that our own use is untouched, and the purpose that is only that sharing', () => {
  const policy = demoWith((document) => {
    document.purposes.push({ id: 'group_sharing', name: 'Sharing with our group', description: 'Share your name and email with the other shops of our group.', legal_basis: 'legitimate_interest', categories: ['user.name', 'user.contact.email'], disclosure: true });
    document.recipients.push({ id: 'sister_shops', name: 'Our sister shops', role: 'affiliate', purposes: ['group_sharing', 'marketing'], categories: ['user.name', 'user.contact.email'], opt_out: true });
  });
  const shops = under(section(policy, 'who-receives'), 'Companies in our group');
  assert.match(shops, /You can opt out of sharing with them at any time, in our privacy center\./, "the objection right's channels");
  assert.match(shops, /Opting out stops only what goes to them: it does not change how we use your information ourselves\./);
  assert.doesNotMatch(shops, /by opting out of/, 'opting out of the recipient is not opting out of its purposes');
  assert.match(under(section(policy, 'how-we-use'), 'Sharing with our group'), /Sharing only: this use is passing your information to “Our sister shops”, and nothing else\. If you opt out of sharing with them, it stops\./);

  const noObjection = demoWith((document) => {
    document.recipients.push({ id: 'sister_shops', name: 'Our sister shops', role: 'affiliate', purposes: ['marketing'], categories: ['user.name'], opt_out: true });
    document.rights.requests = document.rights.requests.filter((right: { type: string }) => right.type !== 'objection' && right.type !== 'withdraw_consent');
  });
  assert.match(under(section(noObjection, 'who-receives'), 'Companies in our group'), /at any time, by contacting us \(see Contact us\)\./);
});

test('the cookies table gives each cookie its provider, purpose and lifetime', () => {
  const table = section(demo, 'cookies').blocks.find((block): block is Extract<Block, { type: 'table' }> => block.type === 'table');
  assert.ok(table);
  assert.deepEqual(table.head, ['Name', 'Provider', 'Purpose', 'Lifetime', 'Description']);
  const rows = table.rows.map((row) => row.map((cell) => cell.map((part) => part.text).join('')));
  assert.deepEqual(
    rows.map((row) => [row[0], row[1], row[2], row[3]]),
    [
      ['nw_session', 'Northwind Books', 'Your account', 'Until you close the browser'],
      ['nw_cart', 'Northwind Books', 'Orders and delivery', '7 days'],
      ['nw_analytics', 'Northwind Books', 'Shop analytics', '13 months'],
    ],
  );
  const html = htmlSection(renderPolicy(demo, 'html'), 'cookies');
  assert.ok(html.includes('<tr><th scope="row"><code>nw_session</code></th><td>Northwind Books</td><td>Your account</td><td>Until you close the browser</td>'));
  assert.ok(html.includes('<th scope="col">Lifetime</th>'));
  const markdown = markdownSection(renderPolicy(demo, 'md'), 'cookies');
  assert.ok(markdown.includes('| Name | Provider | Purpose | Lifetime | Description |\n| --- | --- | --- | --- | --- |\n'));
  assert.ok(markdown.includes('| `nw_analytics` | Northwind Books | Shop analytics | 13 months | Counts visits without identifying you by name. |'));
});

test('facts reach both formats in their section, with contact links', () => {
  const html = renderPolicy(demo, 'html');
  const markdown = renderPolicy(demo, 'md');
  assert.match(htmlSection(html, 'how-we-use'), /<h3>Newsletter and offers<\/h3>[^]*?Only with your consent/);
  assert.match(htmlSection(html, 'who-receives'), /Only when required by law, court order or other legal process\./);
  assert.match(htmlSection(html, 'your-rights'), /within 30 days/);
  assert.match(htmlSection(html, 'your-rights'), /<a href="mailto:privacy@books\.example\.com">privacy@books\.example\.com<\/a>/);
  assert.match(htmlSection(html, 'contact'), /<a href="tel:\+12075550100">\+1 207 555 0100<\/a>/);
  assert.match(markdownSection(markdown, 'how-we-use'), /### Newsletter and offers[^]*?Only with your consent/);
  assert.match(markdownSection(markdown, 'who-receives'), /We do not sell/);
  assert.match(markdownSection(markdown, 'your-rights'), /within 30 days/);
  assert.match(markdownSection(markdown, 'contact'), /\[privacy@books\.example\.com\]\(mailto:privacy@books\.example\.com\)/);
});

test('policy text cannot inject markup or links into either format', () => {
  const script = '<script>alert(1)</script>';
  const javascriptLink = '[click](javascript:alert(1))';
  const policy = demoWith((document) => {
    document.organization.name = `Evil ${script} ${javascriptLink}`;
    document.purposes[2].description = `${javascriptLink} and ${script} and <img src=x onerror=alert(1)> & "quotes" 'too'`;
    document.purposes[2].name = '# Not a heading | nor a cell';
    document.rights.requests[0].channels.push({ kind: 'web', address: 'javascript:alert(1)' });
    document.notices = [{ id: 'tricks', title: '## Fake', text: '- not a list\n\n1. not ordered\n\n    not code\n\n> not a quote\n\n<div>raw</div> `code` *em* _em_ ~~strike~~ &amp; $x$' }];
  });
  const html = renderPolicy(policy, 'html');
  const markdown = renderPolicy(policy, 'md');

  for (const output of [html, markdown]) {
    assert.ok(!output.includes('<script'), 'no script tag');
    assert.ok(!output.includes('<img'), 'no img tag');
    assert.ok(!output.includes('<div>'), 'no raw HTML');
    assert.ok(!/href\s*=\s*["']?\s*javascript:/i.test(output), 'no javascript: href');
  }
  assert.ok(html.includes('Evil &lt;script&gt;alert(1)&lt;/script&gt; [click](javascript:alert(1))'));
  assert.ok(html.includes('&amp; &quot;quotes&quot; &#39;too&#39;'));
  assert.ok(html.includes('<title>Evil &lt;script&gt;alert(1)&lt;/script&gt;'));
  assert.ok(htmlSection(html, 'your-rights').includes('through our online form at javascript:alert(1)'));

  assert.ok(!markdown.includes('[click](javascript:'), 'the link syntax is escaped');
  assert.ok(markdown.includes('\\[click\\](javascript:alert(1))'));
  assert.ok(markdown.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
  assert.ok(markdown.includes('### \\# Not a heading \\| nor a cell'));
  const notice = markdownSection(markdown, 'notice-tricks');
  assert.ok(notice.includes('## \\#\\# Fake'));
  assert.ok(notice.includes('\n\\- not a list\n'));
  assert.ok(notice.includes('\n1\\. not ordered\n'));
  assert.ok(notice.includes('\nnot code\n'));
  assert.ok(notice.includes('\n&gt; not a quote\n'));
  assert.ok(notice.includes('\\`code\\` \\*em\\* \\_em\\_ \\~\\~strike\\~\\~ &amp;amp; \\$x\\$'));
  // Outside of anchors and escaped text, no line of the Markdown starts a heading other than ours.
  const headings = markdown.split('\n').filter((line) => line.startsWith('#'));
  assert.ok(headings.every((line) => /^#{1,3} /.test(line) && !/^#{1,3} #/.test(line)), headings.join('\n'));
});

test('safeHref allows only http(s), mailto, tel and in-page links; the escapers are exact', () => {
  for (const href of ['https://example.com/a?b=c', 'http://example.com', 'mailto:a@example.com', 'tel:+12075550100', '#contact', 'HTTPS://EXAMPLE.COM']) {
    assert.equal(safeHref(href), href);
  }
  for (const href of ['javascript:alert(1)', 'JavaScript:alert(1)', ' javascript:alert(1)', 'java\tscript:alert(1)', 'data:text/html,x', 'vbscript:x', '//evil.example', 'https://', 'https://a b', '#a"b', '', 'file:///etc/passwd']) {
    assert.equal(safeHref(href), undefined, href);
  }
  assert.equal(escapeHtml(`a&b<c>d"e'f`), 'a&amp;b&lt;c&gt;d&quot;e&#39;f');
  assert.equal(escapeHtml('plain'), 'plain');
  assert.equal(escapeMarkdown('a*b_c[d](e)<f>|g\nh&i'), 'a\\*b\\_c\\[d\\](e)&lt;f&gt;\\|g h&amp;i');
});

test('absent sections say so plainly', () => {
  const policy = demoWith((document) => {
    delete document.cookies;
    delete document.recipients;
    delete document.signals;
    delete document.communications;
    delete document.children;
    delete document.security;
    delete document.storage.transfers;
  });
  assert.equal(sectionText(section(policy, 'cookies')), 'Cookies\nWe do not use cookies.');
  assert.match(sectionText(section(policy, 'who-receives')), /We do not share personal information with third parties\./);
  assert.match(sectionText(section(policy, 'who-receives')), /We do not sell your personal information/);
  assert.match(sectionText(section(policy, 'privacy-signals')), /We do not respond to Global Privacy Control signals\./);
  assert.match(sectionText(section(policy, 'privacy-signals')), /We do not respond to Do Not Track signals\./);
  assert.match(sectionText(section(policy, 'communications')), /We do not send marketing messages\./);
  assert.match(sectionText(section(policy, 'children')), /no minimum age/);
  assert.match(sectionText(section(policy, 'transfers')), /We do not transfer personal information out of the United States\./);
  assert.match(sectionText(section(policy, 'security')), /does not list specific security measures/);
  const ids = composePolicyDocument(policy).sections.map((value) => value.id);
  assert.deepEqual(ids, [...FIXED_IDS, 'contact'], 'every section still appears');
  const html = renderPolicy(policy, 'html');
  assert.ok(htmlSection(html, 'cookies').includes('<p>We do not use cookies.</p>'));
  assert.ok(markdownSection(renderPolicy(policy, 'md'), 'who-receives').includes('We do not share personal information with third parties.'));
});

test('the HTML page is standalone, labelled and well nested', () => {
  const html = renderPolicy(demo, 'html');
  assert.ok(html.startsWith('<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>Northwind Books Privacy Policy</title>\n<style>'));
  assert.ok(html.includes('<a class="skip-link" href="#main">'));
  assert.ok(html.includes('<main id="main"'));
  assert.ok(html.includes('<p class="meta">Version 1.0 · Effective 15 January 2026</p>'));
  assert.ok(!/<script|<link|<iframe|<img|\bsrc=|@import|url\(/i.test(html), 'no scripts and no external resources');

  // One h1, and headings never skip a level.
  const levels = [...html.matchAll(/<h([1-6])[ >]/g)].map((match) => Number(match[1]));
  assert.equal(levels.filter((level) => level === 1).length, 1);
  levels.reduce((previous, level) => {
    assert.ok(level <= previous + 1, `h${level} after h${previous}`);
    return level;
  }, 0);

  // Every section is labelled by its own heading; sections are not nested; tags balance.
  const stack: string[] = [];
  const VOID = new Set(['meta', 'br']);
  for (const match of html.matchAll(/<(\/?)([a-z0-9]+)[^>]*>/g)) {
    const [, closing, name] = match;
    if (VOID.has(name!)) continue;
    if (closing) assert.equal(stack.pop(), name, `</${name}> closes the open element`);
    else {
      if (name === 'section') assert.ok(!stack.includes('section'), 'sections are not nested');
      stack.push(name!);
    }
  }
  assert.deepEqual(stack, []);
  for (const match of html.matchAll(/<section id="([^"]+)" aria-labelledby="([^"]+)">/g)) {
    assert.equal(match[2], `${match[1]}-title`);
    assert.ok(html.includes(`<h2 id="${match[2]}">`));
  }
  // Tables have captions and scoped header cells; link texts are never bare "here"/"click".
  assert.equal((html.match(/<table>/g) ?? []).length, (html.match(/<caption>/g) ?? []).length);
  assert.ok(!/<th>/.test(html));
  assert.ok(!/>(here|click here|link)<\/a>/i.test(html));
});

test('the Markdown is plain CommonMark: title, metadata, anchored headings, well-formed tables', () => {
  const markdown = renderPolicy(demo, 'md');
  assert.ok(markdown.startsWith('# Northwind Books Privacy Policy\n\nVersion 1.0 · Effective 15 January 2026\n\n'));
  const lines = markdown.split('\n');
  lines.forEach((line, index) => {
    if (line.startsWith('## ')) assert.match(lines[index - 1]!, /^<a id="[a-z0-9_-]+"><\/a>$/);
  });
  // Every row of a table has as many cells as its head.
  let columns = 0;
  for (const line of lines) {
    if (!line.startsWith('| ')) {
      columns = 0;
      continue;
    }
    const cells = line.replace(/\\\|/g, '').split('|').length - 2;
    if (columns === 0) columns = cells;
    assert.equal(cells, columns, line);
  }
  assert.ok(markdown.endsWith('\n') && !markdown.endsWith('\n\n'));
});

test('rendering is deterministic', () => {
  const again = requirePolicy(loadPolicyFile(DEMO_PATH));
  for (const format of ['md', 'html'] as const) {
    const first = renderPolicy(demo, format);
    assert.equal(renderPolicy(demo, format), first);
    assert.equal(renderPolicy(again, format), first);
  }
});

test('language and dates follow the policy', () => {
  const policy = demoWith((document) => {
    document.policy.language = 'en-US';
    document.policy.title = 'Privacy at Northwind';
  });
  const doc = composePolicyDocument(policy);
  assert.equal(doc.lang, 'en-US');
  assert.equal(doc.title, 'Privacy at Northwind');
  assert.equal(doc.metaLine, 'Version 1.0 · Effective January 15, 2026');
  assert.ok(renderPolicy(policy, 'html').includes('<html lang="en-US">'));
});

// Speed is measured in bench/ (npm run bench), never asserted here.
test('a policy far larger than any real one renders every element it declares', () => {
  const text = readFileSync(DEMO_PATH, 'utf8');
  const document = parse(text) as Record<string, any>;
  for (let index = 0; index < 100; index++) {
    document.purposes.push({ id: `extra_${index}`, name: `Extra purpose ${index}`, description: `Purpose number ${index} <with> [markup] & text, see https://example.com/${index}.`, legal_basis: 'consent', categories: ['user.contact.email', 'user.behavior'] });
    document.cookies.push({ name: `extra_${index}`, provider: 'first_party', purpose: `extra_${index}`, lifetime: '30 days', description: `Cookie ${index}.` });
    document.recipients.push({ id: `vendor_${index}`, name: `Vendor ${index}`, role: 'processor', purposes: [`extra_${index}`], categories: ['user.contact.email'], regions: ['US', 'DE'] });
  }
  const large = requirePolicy(loadPolicyText(stringify(document), 'large.yaml'));
  const html = renderPolicy(large, 'html');
  const markdown = renderPolicy(large, 'md');
  for (const index of [0, 57, 99]) {
    assert.ok(sectionText(section(large, 'how-we-use')).includes(`Extra purpose ${index}`));
    assert.ok(sectionText(section(large, 'cookies')).includes(`extra_${index}`));
    assert.ok(sectionText(section(large, 'who-receives')).includes(`Vendor ${index}`));
    assert.ok(html.includes(`Extra purpose ${index}`) && markdown.includes(`Extra purpose ${index}`));
  }
  assert.ok(!html.includes('<with>'), 'markup in descriptions stays escaped at scale');
});
