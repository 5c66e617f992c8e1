import Fastify from 'fastify';

/**
 * The ceiling for server benchmarks: a bare Fastify route answering a constant, started the
 * same way as `pledge serve` (a fresh Node process listening on the loopback).
 */
const app = Fastify({ logger: false });
app.get('/health', async () => ({ status: 'ok' }));
const address = await app.listen({ port: Number(process.argv[2] ?? 0), host: '127.0.0.1' });
process.stdout.write(`listening on ${address}\n`);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
