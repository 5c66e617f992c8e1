import type { RequestStatus } from './requests.tables.js';

/**
 * How a request's messages leave Pledge: the one-time verification code to the person, notices
 * to the person (received, extended, completed with a download link…) and reminders to staff.
 * The comms outbox implements it (OutboxRequestNotifier, requests.mail.ts).
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
