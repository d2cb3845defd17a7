// A real OpenBao server for integration and end-to-end tests: `bao server -dev` from the
// venv the Makefile installs, on a free loopback port, killed when the test process exits.
import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { secret } from './capture';
// A dev server logs its root token and unseal key: its files go when the test process exits.
import { removeAtExit } from './cleanup';

export const repoRoot = path.resolve(__dirname, '..', '..', '..');
export const workDir = path.join(repoRoot, '.work');

export function baoBinary(): string {
  const local = path.join(repoRoot, '.venv', 'bin', 'bao');
  return fs.existsSync(local) ? local : 'bao';
}

/** Listens on `port` at `host` (0: any free port) and lets go again: the port it got, or undefined if taken. */
async function tryListen(host: string, port: number): Promise<number | undefined> {
  const server = net.createServer();
  const got = await new Promise<number | undefined>((resolve) => {
    server.once('error', () => resolve(undefined));
    server.listen(port, host, () => resolve((server.address() as net.AddressInfo).port));
  });
  if (got !== undefined) await new Promise((r) => server.close(r));
  return got;
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  const port = await tryListen(host, 0);
  if (port === undefined) throw new Error(`no free port on ${host}`);
  return port;
}

/**
 * A port free at `host` whose next port is free too: a dev server listens on both (its
 * cluster listener takes port + 1). Asked of `host` itself, not loopback: a port taken
 * only on the cluster bed's bridge address is free on 127.0.0.1.
 */
async function freePortPair(host: string): Promise<number> {
  for (let tries = 0; ; tries++) {
    const port = await freePort(host);
    if (port < 65535 && (await tryListen(host, port + 1)) !== undefined) return port;
    if (tries >= 50) throw new Error(`no two adjacent free ports found on ${host}`);
  }
}

export interface AuditEntry {
  type: string;
  request?: { path?: string; headers?: Record<string, string[]> };
}

export interface OpenBao {
  addr: string;
  port: number;
  rootToken: string;
  process: ChildProcess;
  /** Calls OpenBao's HTTP API as root (or with `token`); throws on a non-2xx answer. */
  api<T = Record<string, any>>(method: string, apiPath: string, body?: unknown, token?: string): Promise<T>;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** The request paths OpenBao's audit log recorded so far (values in it are HMACed). */
  auditedPaths(): string[];
  auditEntries(): AuditEntry[];
  auditLog: string;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

async function waitHealthy(addr: string, deadlineMs: number): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    try {
      const res = await fetch(`${addr}/v1/sys/health`);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > end) throw new Error(`OpenBao at ${addr} did not become healthy`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Starts a dev-mode OpenBao. `stop()` kills it (its in-memory data is gone);
 * `start()` starts a fresh one on the same port with the same root token.
 */
export async function startOpenBao(
  options: { port?: number; rootToken?: string; audit?: boolean; host?: string } = {},
): Promise<OpenBao> {
  // `host`: another local address to listen on (the cluster bed's bridge), else loopback.
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? (await freePortPair(host));
  const rootToken = options.rootToken ?? `root-${port}`;
  const addr = `http://${host}:${port}`;
  fs.mkdirSync(workDir, { recursive: true });

  const auditLog = path.join(workDir, `openbao-${port}-audit.log`);
  const bao: OpenBao = {
    addr,
    port,
    rootToken,
    auditLog,
    auditEntries() {
      if (!fs.existsSync(auditLog)) return [];
      return fs
        .readFileSync(auditLog, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as AuditEntry);
    },
    auditedPaths() {
      return bao
        .auditEntries()
        .filter((e) => e.type === 'request')
        .map((e) => e.request?.path ?? '');
    },
    process: undefined as unknown as ChildProcess,
    async api(method, apiPath, body, token) {
      // Right after start the dev server's KV v2 mount may still be upgrading its storage; it
      // says so (400, "...will resume service shortly"): wait for it, up to 10 s, then fail.
      for (const end = Date.now() + 10_000; ;) {
        const res = await fetch(`${addr}/v1/${apiPath.replace(/^\//, '')}`, {
          method,
          headers: { 'X-Vault-Token': token ?? rootToken, 'Content-Type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await res.text();
        if (res.status === 400 && text.includes('Upgrading from non-versioned') && Date.now() < end) {
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        if (!res.ok) throw new Error(`OpenBao ${method} ${apiPath}: ${res.status} ${text}`);
        return (text ? JSON.parse(text) : {}) as any;
      }
    },
    async start() {
      // OpenBao creates audit devices only from its configuration file.
      const config = path.join(workDir, `openbao-${port}.hcl`);
      fs.rmSync(auditLog, { force: true });
      fs.writeFileSync(
        config,
        options.audit === false ? '' : `audit "file" "file" {\n  options {\n    file_path = "${auditLog}"\n  }\n}\n`,
      );
      const log = fs.openSync(removeAtExit(path.join(workDir, `openbao-${port}.log`)), 'a');
      removeAtExit(config);
      removeAtExit(auditLog);
      const child = spawn(
        baoBinary(),
        [
          'server',
          '-dev',
          `-config=${config}`,
          `-dev-listen-address=${host}:${port}`,
          `-dev-root-token-id=${rootToken}`,
          '-dev-no-store-token',
        ],
        { stdio: ['ignore', log, log], env: { ...process.env, HOME: workDir } },
      );
      fs.closeSync(log);
      running.add(child);
      child.once('exit', () => running.delete(child));
      bao.process = child;
      await waitHealthy(addr, 20000);
    },
    async stop() {
      const child = bao.process;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await once(child, 'exit');
    },
  };
  await bao.start();
  return bao;
}

/**
 * Writes `policy` as the ACL policy `name` and returns a new token holding only it (and
 * Vault's `default`), registered with the leak scan: what the plugin gets in tests.
 */
export async function policyToken(bao: OpenBao, name: string, policy: string, ttl = '1h'): Promise<string> {
  await bao.api('PUT', `sys/policies/acl/${name}`, { policy });
  const created = await bao.api<{ auth: { client_token: string } }>('POST', 'auth/token/create', {
    policies: [name],
    ttl,
  });
  return secret(created.auth.client_token);
}

let shared: Promise<OpenBao> | undefined;

/** One OpenBao per test process for the suites that do not stop or restart it. */
export function sharedOpenBao(): Promise<OpenBao> {
  shared ??= startOpenBao();
  return shared;
}
