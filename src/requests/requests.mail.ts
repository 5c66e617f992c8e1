import { randomUUID } from 'node:crypto';
import type { CommsService } from '../comms/comms.service.js';
import type { Policy } from '../policy/policy.model.js';
import type { RequestEvent, RequestNotice, RequestNotifier } from './requests.notifier.js';

/** Words for each event, to the person (no personal data: the request id and dates only). */
const PERSON_TEXT: Partial<Record<RequestEvent, (notice: RequestNotice) => { subject: string; body: string }>> = {
  received: (notice) => ({ subject: 'We received your request', body: `We received your ${label(notice.type)} request (${notice.requestId}). We will answer by ${day(notice.dueAt)}.` }),
  verified: (notice) => ({ subject: 'Your request is verified', body: `Thank you: your ${label(notice.type)} request (${notice.requestId}) is verified. We will answer by ${day(notice.dueAt)}.` }),
  approved: (notice) => ({ subject: 'Your request is being carried out', body: `Your ${label(notice.type)} request (${notice.requestId}) was approved and is being carried out.` }),
  denied: (notice) => ({ subject: 'About your request', body: `We cannot carry out your ${label(notice.type)} request (${notice.requestId}). Write to us if you want to know more or to complain.` }),
  canceled: (notice) => ({ subject: 'Your request was canceled', body: `Your ${label(notice.type)} request (${notice.requestId}) was canceled.` }),
  extended: (notice) => ({ subject: 'We need more time for your request', body: `We need more time for your ${label(notice.type)} request (${notice.requestId}). We will answer by ${day(notice.dueAt)}.` }),
  completed: (notice) => ({
    subject: 'Your request is complete',
    body: [`Your ${label(notice.type)} request (${notice.requestId}) is complete.`, ...Object.entries(notice.links ?? {}).map(([format, url]) => `Download (${format}): ${url}`)].join('\n\n'),
  }),
  failed: (notice) => ({ subject: 'About your request', body: `We could not complete your ${label(notice.type)} request (${notice.requestId}) yet. We are working on it and will write again.` }),
};

function label(type: string): string {
  return type.replace(/_/g, ' ');
}

function day(iso: string): string {
  return iso.slice(0, 10);
}

/**
 * Request mail through the outbox: the verification code and notices to the person go to the
 * address the request names (known subject or not — the same mail either way, so mail is no
 * account-existence oracle); staff notices go to the policy's privacy contact. The code travels
 * only inside the sealed message data.
 */
export class OutboxRequestNotifier implements RequestNotifier {
  private readonly staffAddress: string | undefined;

  constructor(
    private readonly comms: Pick<CommsService, 'enqueue'>,
    policy: Policy,
  ) {
    const contacts = policy.document.organization.contacts ?? [];
    this.staffAddress = (contacts.find((contact) => contact.role === 'privacy' && contact.email) ?? contacts.find((contact) => contact.email))?.email;
  }

  async sendVerificationCode(notice: RequestNotice, code: string, address: string): Promise<void> {
    // Every code is a message of its own (a resend is a new code).
    await this.comms.enqueue({ topic: 'request_notice', to: { address }, template: 'verification_code', data: { code }, idempotencyKey: `request:${notice.requestId}:code:${randomUUID()}` });
  }

  async notify(notice: RequestNotice, event: RequestEvent, address: string | undefined): Promise<void> {
    if (address === undefined) {
      if (!this.staffAddress) return;
      const subject = event === 'deadline_approaching' ? `Request ${notice.requestId} is due on ${day(notice.dueAt)}` : `Request ${notice.requestId}: ${event.replace(/_/g, ' ')}`;
      const body = `The ${label(notice.type)} request ${notice.requestId} is ${notice.status.replace(/_/g, ' ')} and due on ${day(notice.dueAt)}.`;
      await this.comms.enqueue({ topic: 'request_notice', to: { address: this.staffAddress }, template: 'message', data: { subject, body }, idempotencyKey: `request:${notice.requestId}:staff:${event}:${notice.dueAt}` });
      return;
    }
    const words = PERSON_TEXT[event];
    if (!words) return;
    await this.comms.enqueue({ topic: 'request_notice', to: { address }, template: 'message', data: words(notice), idempotencyKey: `request:${notice.requestId}:${event}:${notice.dueAt}` });
  }
}
