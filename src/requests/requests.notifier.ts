import type { Logger } from '../core/logger.js';
import type { RequestStatus } from './requests.tables.js';

/**
 * How a request's messages leave Pledge: the one-time verification code to the person, notices
 * to the person (received, extended, completed with a download link…) and reminders to staff.
 * The comms outbox implements it; the default only logs that a message was due (ids and event
 * names, never the code or the address).
 */
export type RequestEvent = 'received' | 'verified' | 'approved' | 'denied' | 'canceled' | 'extended' | 'completed' | 'failed' | 'deadline_approaching';

export interface RequestNotice {
  requestId: string;
  type: string;
  status: RequestStatus;
  dueAt: string;
  /** Signed download links of a completed access or portability package. */
  links?: Record<string, string>;
}

export interface RequestNotifier {
  /** `code` must only ever travel to `address`: never logged, stored or returned. */
  sendVerificationCode(notice: RequestNotice, code: string, address: string): Promise<void>;
  /** `address` is the person's email when the notice is for them, undefined for staff notices. */
  notify(notice: RequestNotice, event: RequestEvent, address: string | undefined): Promise<void>;
}

export class LogNotifier implements RequestNotifier {
  constructor(private readonly logger: Logger) {}

  async sendVerificationCode(notice: RequestNotice): Promise<void> {
    this.logger.warn({ request: notice.requestId }, 'a verification code is due but no mail delivery is configured; a privacy officer may verify the request by hand');
  }

  async notify(notice: RequestNotice, event: RequestEvent, address: string | undefined): Promise<void> {
    this.logger.debug({ request: notice.requestId, event, to: address === undefined ? 'staff' : 'person' }, 'request notice due');
  }
}
