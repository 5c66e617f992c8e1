import net from 'node:net';
import { SMTPServer } from 'smtp-server';

/**
 * A real SMTP server on loopback (smtp-server) that keeps what it receives, behind a small TCP
 * front whose behaviour a test switches at any time:
 * - ok: messages are accepted;
 * - refuse: every recipient is refused with 550;
 * - stall: the connection is accepted and nothing is ever said (the client's timeout fires);
 * - drop: the connection is closed as soon as it opens.
 * Switching the mode closes the connections open at that moment.
 */
export type SinkMode = 'ok' | 'refuse' | 'stall' | 'drop';

export interface ReceivedMail {
  from: string;
  to: string[];
  raw: string;
  /** Unfolded headers, names lower-cased; a name seen twice keeps every value. */
  headers: Map<string, string[]>;
  messageId: string;
}

export interface SmtpSink {
  url: string;
  port: number;
  mode: SinkMode;
  received: ReceivedMail[];
  /** Connections the front has seen (any mode). */
  connections: number;
  waitFor(predicate: (received: ReceivedMail[]) => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export function parseHeaders(raw: string): Map<string, string[]> {
  const head = raw.split(/\r?\n\r?\n/, 1)[0] ?? '';
  const unfolded = head.replace(/\r?\n[ \t]+/g, ' ');
  const headers = new Map<string, string[]>();
  for (const line of unfolded.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
  }
  return headers;
}

export async function startSmtpSink(): Promise<SmtpSink> {
  const received: ReceivedMail[] = [];
  const sockets = new Set<net.Socket>();
  const sink = { received, connections: 0 } as unknown as SmtpSink;
  // Switching the mode cuts the open connections: a pooled client must meet the new behaviour.
  let mode: SinkMode = 'ok';
  Object.defineProperty(sink, 'mode', {
    get: () => mode,
    set: (next: SinkMode) => {
      mode = next;
      for (const socket of sockets) socket.destroy();
    },
  });
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    size: 10 * 1024 * 1024,
    onRcptTo(_address, _session, callback) {
      if (sink.mode === 'refuse') {
        const error = new Error('mailbox unavailable') as Error & { responseCode: number };
        error.responseCode = 550;
        return callback(error);
      }
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const headers = parseHeaders(raw);
        received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((entry) => entry.address),
          raw,
          headers,
          messageId: headers.get('message-id')?.[0] ?? '',
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const innerPort = (server.server.address() as net.AddressInfo).port;

  const front = net.createServer((socket) => {
    sink.connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    if (sink.mode === 'drop') return socket.destroy();
    if (sink.mode === 'stall') return;
    const upstream = net.connect(innerPort, '127.0.0.1');
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => socket.destroy());
    socket.on('close', () => upstream.destroy());
    upstream.on('close', () => socket.destroy());
    socket.pipe(upstream).pipe(socket);
  });
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  const port = (front.address() as net.AddressInfo).port;
  sink.port = port;
  sink.url = `smtp://127.0.0.1:${port}`;
  sink.waitFor = async (predicate, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(received)) {
      if (Date.now() > deadline) throw new Error(`the SMTP sink did not get the expected mail in ${timeoutMs} ms (has ${received.length})`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  sink.close = async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => front.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return sink;
}
