/**
 * `npx tsx bench/conn-cost-sim.ts [--streams N]`: what one held agent stream
 * costs a gRPC server in RSS, plaintext against mutual TLS, with grpc-js alone
 * (the platform's AgentService definition, none of its code). bench:fleet runs
 * the platform plaintext (AP_INSECURE=1, as the tests do); this says what TLS,
 * the default in production, adds per agent.
 *
 * A server child process holds every stream and answers one message on each;
 * this process opens N connections (a private subchannel pool each, as real
 * hosts do), then the server collects garbage and reports its RSS. Throwaway
 * RSA 2048 CA, server and client certificates are made with `openssl` in a
 * temp dir and removed.
 */
import { execFileSync, fork } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import {
  AgentServiceClient,
  AgentServiceService,
  type AgentMessage,
  type ServerMessage,
} from '@agent-platform/protocol';
import { tempDir } from '../test/support/procs.js';
import { arg, report, round } from './support.js';

const rssMb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) / 1024;

if (process.argv[2] === 'server') {
  // Child: hold every stream; answer each message with an ack.
  const dir = process.argv[3] ?? '';
  const tls = process.argv[4] === 'tls';
  const f = (n: string) => readFileSync(path.join(dir, n));
  const calls: unknown[] = [];
  const server = new grpc.Server({
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_permit_without_calls': 1,
  });
  server.addService(AgentServiceService, {
    connect(call: grpc.ServerDuplexStream<AgentMessage, ServerMessage>) {
      calls.push(call);
      call.on('data', () =>
        call.write({ message: { $case: 'heartbeatAck', value: { success: true, message: '', code: '' } } }),
      );
    },
    enroll() {},
  });
  const creds = tls
    ? grpc.ServerCredentials.createSsl(
        f('ca.crt'),
        [{ private_key: f('server.key'), cert_chain: f('server.crt') }],
        true,
      )
    : grpc.ServerCredentials.createInsecure();
  server.bindAsync('127.0.0.1:0', creds, (err, port) => {
    if (err) throw err;
    setTimeout(() => process.send?.({ port, rss: rssMb() }), 2000);
  });
  process.on('message', () => {
    (globalThis as { gc?: () => void }).gc?.();
    setTimeout(() => process.send?.({ rss: rssMb(), calls: calls.length }), 3000);
  });
} else {
  const N = Number(arg('streams', '2000'));
  const dir = tempDir('conn-cost');
  try {
    const ssl = (...a: string[]) => execFileSync('openssl', a, { cwd: dir, stdio: 'ignore' });
    ssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '1',
      '-subj',
      '/CN=bench-ca',
    );
    writeFileSync(path.join(dir, 'ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
    for (const who of ['server', 'client']) {
      ssl(
        'req',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        `${who}.key`,
        '-out',
        `${who}.csr`,
        '-subj',
        `/CN=${who === 'server' ? 'localhost' : 'agent'}`,
      );
      ssl(
        'x509',
        '-req',
        '-in',
        `${who}.csr`,
        '-CA',
        'ca.crt',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-out',
        `${who}.crt`,
        '-days',
        '1',
        '-extfile',
        'ext',
      );
    }
    const f = (n: string) => readFileSync(path.join(dir, n));
    const measure = async (tls: boolean) => {
      const child = fork(import.meta.filename, ['server', dir, tls ? 'tls' : 'plain'], {
        execArgv: ['--import', 'tsx', '--expose-gc'],
      });
      try {
        const first = await new Promise<{ port: number; rss: number }>((r) =>
          child.once('message', r as never),
        );
        const creds = tls
          ? grpc.credentials.createSsl(f('ca.crt'), f('client.key'), f('client.crt'))
          : grpc.credentials.createInsecure();
        const clients: AgentServiceClient[] = [];
        let answered = 0;
        for (let i = 0; i < N; i += 100) {
          await Promise.all(
            Array.from(
              { length: Math.min(100, N - i) },
              () =>
                new Promise<void>((resolve) => {
                  const c = new AgentServiceClient(`localhost:${first.port}`, creds, {
                    'grpc.use_local_subchannel_pool': 1,
                  });
                  clients.push(c);
                  const call = c.connect();
                  call.on('data', () => {
                    answered++;
                    resolve();
                  });
                  call.on('error', () => resolve());
                  call.write({
                    message: {
                      $case: 'heartbeat',
                      value: { agentId: 'x', timestamp: new Date(), runningTasks: 0 },
                    },
                  });
                }),
            ),
          );
        }
        child.send('measure');
        const after = await new Promise<{ rss: number; calls: number }>((r) =>
          child.once('message', r as never),
        );
        for (const c of clients) c.close();
        return {
          before: first.rss,
          after: after.rss,
          streams: after.calls,
          answered,
          perKb: ((after.rss - first.rss) * 1024) / Math.max(1, after.calls),
        };
      } finally {
        child.kill('SIGKILL');
      }
    };
    const plain = await measure(false);
    const tls = await measure(true);
    report(
      `connection cost: ${N} held AgentService streams on a grpc-js server`,
      ['transport', 'streams answered', 'server RSS before -> after MB', 'KB per stream'],
      [
        [
          'plaintext',
          plain.answered,
          `${round(plain.before, 1)} -> ${round(plain.after, 1)}`,
          round(plain.perKb, 1),
        ],
        [
          'mutual TLS (RSA 2048)',
          tls.answered,
          `${round(tls.before, 1)} -> ${round(tls.after, 1)}`,
          round(tls.perKb, 1),
        ],
      ],
      {
        bench: 'conn-cost',
        streams: N,
        plain_kb_per_stream: round(plain.perKb, 1),
        tls_kb_per_stream: round(tls.perKb, 1),
        tls_extra_kb_per_stream: round(tls.perKb - plain.perKb, 1),
      },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
