import { SMTPServer } from 'smtp-server';

/**
 * A loopback SMTP sink in a process of its own (so the benchmark's outbox does not share its
 * event loop): accepts everything, keeps nothing, prints its port, and on SIGTERM prints how
 * many messages it accepted.
 */
let accepted = 0;
const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS', 'AUTH'],
  logger: false,
  onData(stream, _session, callback) {
    stream.on('data', () => {});
    stream.on('end', () => {
      accepted += 1;
      callback();
    });
  },
});
server.listen(0, '127.0.0.1', () => {
  const address = server.server.address();
  process.stdout.write(`port ${typeof address === 'object' && address ? address.port : 0}\n`);
});
process.on('SIGTERM', () => {
  process.stdout.write(`accepted ${accepted}\n`);
  server.close(() => process.exit(0));
});
