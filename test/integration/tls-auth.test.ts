// TLS to a real OpenBao with its own CA, certificate and JWT login, namespaces.
import { expect } from 'chai';
import { createSign, generateKeyPairSync } from 'node:crypto';
import * as fs from 'node:fs';
import { secret } from '../support/capture';
import { sharedOpenBao } from '../support/openbao';
import { credentialFile, startTestPlugin, TestPlugin } from '../support/plugin';
import { startTcpProxy } from '../support/proxy';
import { makePki, startTlsOpenBao, TestPki, TlsOpenBao } from '../support/tls';
import { staticReadPolicy } from '../support/policies';

const VALUE = secret('tls-canary-value-93ac1f');

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

function signJwt(privateKey: string, claims: Record<string, unknown>): string {
  const header = base64url(JSON.stringify({ alg: 'RS256', typ: 'JWT' }));
  const payload = base64url(JSON.stringify(claims));
  const signature = createSign('RSA-SHA256').update(`${header}.${payload}`).sign(privateKey);
  return `${header}.${payload}.${base64url(signature)}`;
}

describe('TLS, certificate and JWT login against a real OpenBao', function () {
  this.timeout(60_000);
  let pki: TestPki;
  let bao: TlsOpenBao;
  const running: TestPlugin[] = [];
  const request = {
    SecretName: 'k',
    ServiceName: 'svc',
    TaskName: 'svc.1.x',
    SecretLabels: { 'dso.ref': 'dso://secret/data/tls/app#key' },
  };
  const start = (env: Record<string, string>) => {
    const plugin = startTestPlugin({ VAULT_ADDR: bao.addr, DSO_TIMEOUT: '5s', ...env });
    running.push(plugin);
    return plugin;
  };
  let jwtKey: string;
  let readerToken: string;

  before(async () => {
    pki = makePki('tls-auth');
    bao = await startTlsOpenBao(pki);
    await bao.api('POST', 'sys/mounts/secret', { type: 'kv', options: { version: '2' } });
    await bao.api('POST', 'secret/data/tls/app', { data: { key: VALUE } });
    await bao.api('PUT', 'sys/policies/acl/tls-reader', { policy: staticReadPolicy('secret/data/tls/*') });
    await bao.api('POST', 'sys/auth/cert', { type: 'cert' });
    await bao.api('POST', 'auth/cert/certs/dso', {
      certificate: fs.readFileSync(pki.caCert, 'utf8'),
      token_policies: ['tls-reader'],
      token_ttl: '1h',
    });
    const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
    jwtKey = keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    await bao.api('POST', 'sys/auth/jwt-ci', { type: 'jwt' });
    await bao.api('POST', 'auth/jwt-ci/config', {
      jwt_validation_pubkeys: [keys.publicKey.export({ type: 'spki', format: 'pem' }).toString()],
    });
    await bao.api('POST', 'auth/jwt-ci/role/dso', {
      role_type: 'jwt',
      user_claim: 'sub',
      bound_audiences: ['dso'],
      token_policies: ['tls-reader'],
      token_ttl: '1h',
    });
    readerToken = secret(
      (await bao.api<{ auth: { client_token: string } }>('POST', 'auth/token/create', { policies: ['tls-reader'] }))
        .auth.client_token,
    );
  });

  after(async () => {
    running.forEach((p) => p.stop());
    await bao?.stop();
  });

  it('verifies Vault against VAULT_CACERT', async () => {
    const token = await bao.api<{ auth: { client_token: string } }>('POST', 'auth/token/create', {
      policies: ['tls-reader'],
    });
    const plugin = start({
      VAULT_CACERT: pki.caCert,
      VAULT_AUTH_METHOD: 'token',
      VAULT_TOKEN_FILE: credentialFile('tls-token', secret(token.auth.client_token)),
    });
    const { value } = await plugin.get(request);
    expect(value!.toString()).to.equal(VALUE);
  });

  it('fails with a clear message when the CA is the wrong one', async () => {
    const plugin = start({
      VAULT_CACERT: pki.otherCaCert,
      VAULT_AUTH_METHOD: 'token',
      VAULT_TOKEN_FILE: credentialFile('tls-token-2', readerToken),
    });
    const { reply } = await plugin.get(request);
    expect(reply.Err).to.match(/TLS: .*(not signed by a trusted CA|self-signed).*VAULT_CACERT/);
  });

  it('fails with a clear message without any CA for a private certificate', async () => {
    const plugin = start({ VAULT_AUTH_METHOD: 'token', VAULT_TOKEN_FILE: credentialFile('tls-token-3', readerToken) });
    const { reply } = await plugin.get(request);
    expect(reply.Err).to.match(/TLS: .*VAULT_CACERT/);
  });

  it('skips verification only for VAULT_SKIP_VERIFY=true exactly, with a warning', async () => {
    const yes = start({
      VAULT_SKIP_VERIFY: 'true',
      VAULT_AUTH_METHOD: 'token',
      VAULT_TOKEN_FILE: credentialFile('tls-token-4', readerToken),
    });
    expect((await yes.get(request)).value!.toString()).to.equal(VALUE);
    expect(yes.logs.some((l) => l.includes('VAULT_SKIP_VERIFY=true'))).to.equal(true);
    const one = start({
      VAULT_SKIP_VERIFY: '1',
      VAULT_AUTH_METHOD: 'token',
      VAULT_TOKEN_FILE: credentialFile('tls-token-5', readerToken),
    });
    expect((await one.get(request)).reply.Err).to.match(/TLS/);
  });

  it('logs in with a client certificate', async () => {
    const plugin = start({
      VAULT_CACERT: pki.caCert,
      VAULT_AUTH_METHOD: 'cert',
      VAULT_CERT_ROLE: 'dso',
      VAULT_CLIENT_CERT: pki.clientCert,
      VAULT_CLIENT_KEY: pki.clientKey,
    });
    const { value, reply } = await plugin.get(request);
    expect(reply.Err).to.equal('');
    expect(value!.toString()).to.equal(VALUE);
  });

  it('logs in with a JWT on a custom mount, re-reading the file at each login', async () => {
    const now = Math.floor(Date.now() / 1000);
    const jwt = secret(signJwt(jwtKey, { sub: 'swarm-manager-1', aud: 'dso', iat: now, exp: now + 600 }));
    const file = credentialFile('jwt', jwt);
    const plugin = start({
      VAULT_CACERT: pki.caCert,
      VAULT_AUTH_METHOD: 'jwt',
      VAULT_AUTH_MOUNT: 'jwt-ci',
      VAULT_JWT_ROLE: 'dso',
      VAULT_JWT_FILE: file,
    });
    expect((await plugin.get(request)).value!.toString()).to.equal(VALUE);
    const expired = secret(signJwt(jwtKey, { sub: 'swarm-manager-1', aud: 'dso', iat: now - 1200, exp: now - 600 }));
    fs.writeFileSync(file, expired);
    const denied = await plugin.plugin.testVault(undefined);
    expect(denied).to.include({ ok: false, stage: 'login' });
    expect(String(denied.error)).to.match(/jwt login at auth\/jwt-ci failed/);
  });

  it('refuses a redirect from https to plain http, so the token never travels in clear', async () => {
    const https = await import('node:https');
    const seen: string[] = [];
    const front = https.createServer(
      { cert: fs.readFileSync(pki.serverCert), key: fs.readFileSync(pki.serverKey) },
      (req, res) => {
        seen.push(req.url ?? '');
        res.writeHead(307, { Location: `http://127.0.0.1:9${req.url}` }).end();
      },
    );
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', () => r()));
    try {
      const plugin = start({
        VAULT_ADDR: `https://127.0.0.1:${(front.address() as { port: number }).port}`,
        VAULT_CACERT: pki.caCert,
        VAULT_AUTH_METHOD: 'token',
        VAULT_TOKEN_FILE: credentialFile('tls-token-redirect', secret(bao.rootToken)),
      });
      const { reply } = await plugin.get(request);
      expect(reply.Err).to.match(
        /redirected to http:\/\/127\.0\.0\.1:9, which is not https; refusing to send the token there/,
      );
      expect(seen.length).to.be.greaterThan(0);
    } finally {
      front.close();
    }
  });

  it('reuses connections to Vault (keep-alive), not a handshake per request', async () => {
    const proxy = await startTcpProxy(Number(new URL(bao.addr).port));
    try {
      const token = await bao.api<{ auth: { client_token: string } }>('POST', 'auth/token/create', {
        policies: ['tls-reader'],
      });
      const plugin = startTestPlugin({
        VAULT_ADDR: `https://127.0.0.1:${proxy.port}`,
        VAULT_CACERT: pki.caCert,
        VAULT_AUTH_METHOD: 'token',
        VAULT_TOKEN_FILE: credentialFile('tls-token-ka', secret(token.auth.client_token)),
      });
      running.push(plugin);
      for (let i = 0; i < 10; i++) expect((await plugin.get({ ...request, TaskName: `t${i}` })).reply.Err).to.equal('');
      // 10 GetSecrets mean 12+ Vault requests (login, mount lookup, reads): one connection serves them.
      expect(proxy.connections).to.equal(1);
    } finally {
      await proxy.close();
    }
  });
});

describe('Vault namespaces', function () {
  this.timeout(30_000);
  it('sends VAULT_NAMESPACE on every request and reads inside the namespace', async () => {
    const bao = await sharedOpenBao();
    await bao.api('POST', 'sys/namespaces/team-dso').catch(() => undefined);
    const inNs = (method: string, apiPath: string, body?: unknown) =>
      fetch(`${bao.addr}/v1/${apiPath}`, {
        method,
        headers: { 'X-Vault-Token': bao.rootToken, 'X-Vault-Namespace': 'team-dso' },
        body: body === undefined ? undefined : JSON.stringify(body),
      }).then(async (r) => {
        if (!r.ok) throw new Error(`${method} ${apiPath}: ${r.status}`);
        return r.status === 204 ? {} : ((await r.json()) as { auth?: { client_token: string } });
      });
    await inNs('POST', 'sys/mounts/kv', { type: 'kv', options: { version: '2' } }).catch(() => undefined);
    await inNs('POST', 'kv/data/app', { data: { key: VALUE } });
    // The plugin's token lives in the namespace and reads only there, as an operator's would.
    await inNs('PUT', 'sys/policies/acl/ns-reader', { policy: staticReadPolicy('kv/data/*') });
    const nsToken = secret(
      (await inNs('POST', 'auth/token/create', { policies: ['ns-reader'], ttl: '1h' })).auth!.client_token,
    );
    const plugin = startTestPlugin({
      VAULT_ADDR: bao.addr,
      VAULT_NAMESPACE: 'team-dso',
      VAULT_AUTH_METHOD: 'token',
      VAULT_TOKEN_FILE: credentialFile('ns-token', nsToken),
    });
    try {
      const { value, reply } = await plugin.get({ SecretName: 'n', SecretLabels: { 'dso.ref': 'dso://kv/app#key' } });
      expect(reply.Err).to.equal('');
      expect(value!.toString()).to.equal(VALUE);
      const outside = startTestPlugin({
        VAULT_ADDR: bao.addr,
        VAULT_AUTH_METHOD: 'token',
        VAULT_TOKEN_FILE: credentialFile('ns-token-2', nsToken),
      });
      expect(
        (await outside.get({ SecretName: 'n', SecretLabels: { 'dso.ref': 'dso://kv/app#key' } })).reply.Err,
      ).to.not.equal('');
      outside.stop();
    } finally {
      plugin.stop();
    }
  });
});
