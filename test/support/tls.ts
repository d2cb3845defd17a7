// Certificates made with openssl for the TLS tests (a CA, a server certificate for
// 127.0.0.1/localhost, a client certificate, and an unrelated CA), and an OpenBao server
// with a TLS listener: not dev mode, so it is initialised and unsealed here.
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { removeAtExit } from './cleanup';
import { baoBinary, freePort, workDir } from './openbao';
import { secret } from './capture';

export interface TestPki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  otherCaCert: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export function makePki(name: string): TestPki {
  const dir = path.join(workDir, 'pki', name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Private keys of the test PKI: gone when the test process ends.
  removeAtExit(dir);
  /** A new key `<prefix>.key` and what `output` asks for with it: a certificate or a request. */
  const newKey = (prefix: string, cn: string, output: string[]) =>
    openssl(['req', ...output, '-newkey', 'rsa:2048', '-nodes', '-keyout', `${prefix}.key`, '-subj', `/CN=${cn}`], dir);
  const ca = (prefix: string, cn: string) => newKey(prefix, cn, ['-x509', '-out', `${prefix}.crt`, '-days', '2']);
  ca('ca', 'DSO test CA');
  ca('other-ca', 'Unrelated CA');
  const leaf = (prefix: string, cn: string, ext: string) => {
    newKey(prefix, cn, ['-out', `${prefix}.csr`]);
    fs.writeFileSync(path.join(dir, `${prefix}.ext`), ext);
    openssl(
      [
        'x509',
        '-req',
        '-in',
        `${prefix}.csr`,
        '-CA',
        'ca.crt',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-out',
        `${prefix}.crt`,
        '-days',
        '2',
        '-extfile',
        `${prefix}.ext`,
      ],
      dir,
    );
  };
  leaf('server', 'localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  leaf('client', 'dso-plugin', 'extendedKeyUsage=clientAuth\n');
  const f = (n: string) => path.join(dir, n);
  return {
    dir,
    caCert: f('ca.crt'),
    serverCert: f('server.crt'),
    serverKey: f('server.key'),
    clientCert: f('client.crt'),
    clientKey: f('client.key'),
    otherCaCert: f('other-ca.crt'),
  };
}

export interface TlsOpenBao {
  addr: string;
  rootToken: string;
  api<T = any>(method: string, apiPath: string, body?: unknown): Promise<T>;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => running.forEach((c) => c.kill('SIGKILL')));

/** An OpenBao with a TLS listener and in-memory storage, initialised and unsealed. */
export async function startTlsOpenBao(pki: TestPki): Promise<TlsOpenBao> {
  const port = await freePort();
  const addr = `https://127.0.0.1:${port}`;
  const config = path.join(pki.dir, `openbao-${port}.hcl`);
  fs.writeFileSync(
    config,
    [
      'storage "inmem" {}',
      'disable_mlock = true',
      `api_addr = "${addr}"`,
      `listener "tcp" {`,
      `  address = "127.0.0.1:${port}"`,
      `  cluster_address = "127.0.0.1:${await freePort()}"`,
      `  tls_cert_file = "${pki.serverCert}"`,
      `  tls_key_file = "${pki.serverKey}"`,
      '}',
    ].join('\n'),
  );
  const log = fs.openSync(removeAtExit(path.join(workDir, `openbao-tls-${port}.log`)), 'a');
  const child = spawn(baoBinary(), ['server', `-config=${config}`], {
    stdio: ['ignore', log, log],
    env: { ...process.env, HOME: workDir },
  });
  fs.closeSync(log);
  running.add(child);
  child.once('exit', () => running.delete(child));
  const ca = fs.readFileSync(pki.caCert);
  const agent = new https.Agent({ ca, keepAlive: false });
  let rootToken = '';
  const call = <T>(method: string, apiPath: string, body?: unknown, token = rootToken): Promise<T> =>
    new Promise((resolve, reject) => {
      const req = https.request(
        `${addr}/v1/${apiPath}`,
        { method, agent, headers: { 'X-Vault-Token': token, 'Content-Type': 'application/json' } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if ((res.statusCode ?? 500) >= 300)
              reject(new Error(`OpenBao ${method} ${apiPath}: ${res.statusCode} ${text.slice(0, 300)}`));
            else resolve((text ? JSON.parse(text) : {}) as T);
          });
        },
      );
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  const end = Date.now() + 20_000;
  /** Polls `GET apiPath` until it succeeds, at most until `end`. */
  const answered = async (apiPath: string, failure: string) => {
    for (;;) {
      try {
        await call('GET', apiPath);
        return;
      } catch {
        if (Date.now() > end) throw new Error(failure);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  await answered('sys/seal-status', 'TLS OpenBao did not start');
  const init = await call<{ keys_base64: string[]; root_token: string }>('PUT', 'sys/init', {
    secret_shares: 1,
    secret_threshold: 1,
  });
  rootToken = secret(init.root_token);
  secret(init.keys_base64[0]);
  await call('PUT', 'sys/unseal', { key: init.keys_base64[0] });
  await answered('sys/mounts', 'TLS OpenBao did not become active');
  return {
    addr,
    rootToken,
    api: (method, apiPath, body) => call(method, apiPath, body),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await once(child, 'exit');
    },
  };
}
