import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Transporter } from 'nodemailer';

/** One message ready to leave: every header value here is already one clean line. */
export interface OutgoingMail {
  id: string;
  messageId: string;
  from: { name: string; address: string };
  to: { name?: string; address: string };
  subject: string;
  text: string;
  html: string;
  /** RFC 2369 / RFC 8058 headers of marketing mail. */
  unsubscribeUrl?: string;
}

export interface MailTransport {
  /** 'smtp': handed to a server (status sent); 'file': written under the data dir (status stored). */
  readonly mode: 'smtp' | 'file';
  send(mail: OutgoingMail): Promise<void>;
  close(): Promise<void>;
}

type Nodemailer = typeof import('nodemailer');
let loaded: Promise<Nodemailer> | undefined;
/** nodemailer is loaded on first use: a server that sends no mail never pays for it. */
function nodemailer(): Promise<Nodemailer> {
  loaded ??= import('nodemailer').then((module) => ((module as unknown as { default?: Nodemailer }).default ?? module) as Nodemailer);
  return loaded;
}

function mailOptions(mail: OutgoingMail) {
  return {
    messageId: mail.messageId,
    from: mail.from,
    to: mail.to.name ? { name: mail.to.name, address: mail.to.address } : mail.to.address,
    subject: mail.subject,
    text: mail.text,
    html: mail.html,
    // No X-Mailer: it says nothing the recipient needs.
    xMailer: false as const,
    ...(mail.unsubscribeUrl
      ? {
          list: { unsubscribe: mail.unsubscribeUrl },
          headers: { 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' },
        }
      : {}),
  };
}

/**
 * SMTP through nodemailer with pooled connections. Failures carry nodemailer's `code` and the
 * server's `responseCode`; the outbox keeps those, never the server's text (which may quote
 * the address).
 */
export function smtpTransport(url: string, options: { timeoutMs: number; maxConnections?: number }): MailTransport {
  let transporter: Promise<Transporter> | undefined;
  const get = () =>
    (transporter ??= nodemailer().then((mailer) =>
      mailer.createTransport({
        url,
        pool: true,
        maxConnections: options.maxConnections ?? 5,
        maxMessages: 1000,
        connectionTimeout: options.timeoutMs,
        greetingTimeout: options.timeoutMs,
        socketTimeout: options.timeoutMs,
        // A loopback or internal relay often has no certificate for its name; the URL decides TLS.
        tls: { rejectUnauthorized: !/^smtps?:\/\/(127\.0\.0\.1|localhost|\[::1\])[:/]/.test(url) },
        logger: false,
      } as Parameters<Nodemailer['createTransport']>[0]),
    ));
  return {
    mode: 'smtp',
    async send(mail) {
      await (await get()).sendMail(mailOptions(mail));
    },
    async close() {
      if (transporter) (await transporter).close();
    },
  };
}

/**
 * No SMTP configured (the embedded default): each message is built as MIME without any
 * network and written to `<dir>/<message id>.eml` (whole or not at all).
 */
export function fileTransport(directory: string): MailTransport {
  let transporter: Promise<Transporter> | undefined;
  return {
    mode: 'file',
    async send(mail) {
      transporter ??= nodemailer().then((mailer) => mailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' }));
      const info = (await (await transporter).sendMail(mailOptions(mail))) as { message: Buffer };
      mkdirSync(directory, { recursive: true, mode: 0o700 });
      const file = path.join(directory, `${mail.id}.eml`);
      const temporary = `${file}.${process.pid}.tmp`;
      writeFileSync(temporary, info.message, { mode: 0o600 });
      renameSync(temporary, file);
    },
    async close() {},
  };
}

/** A failure reduced to codes: nodemailer's error code and the SMTP reply code. */
export function failureCode(error: unknown): string {
  const { code, responseCode } = (error ?? {}) as { code?: unknown; responseCode?: unknown };
  const parts = [typeof code === 'string' && /^[A-Z_]{2,30}$/.test(code) ? code : 'ESEND'];
  if (typeof responseCode === 'number') parts.push(String(responseCode));
  return parts.join(' ');
}
