// Addresses that accept connections and then never answer, or trickle a byte a second (a
// hung node, a hung load balancer): each Vault attempt gets only a share of DSO_TIMEOUT, so
// the next address still serves; the bad one is skipped by later requests; no connection
// to it outlives its attempt. And the token never follows a redirect to a host the
// operator did not name.
import { expect } from 'chai';
import * as http from 'node:http';
import * as net from 'node:net';
import { secret } from '../support/capture';
import { OpenBao, sharedOpenBao } from '../support/openbao';
import { credentialFile, startTestPlugin, TestPlugin } from '../support/plugin';
import { staticReadPolicy } from '../support/policies';

const VALUE = secret('deadline-canary-value-93be1f');
const TIMEOUT_MS = 3_000;

/** A TCP server that accepts and then never answers (`trickle`: one byte a second of a never-ending reply). */
async function badServer(
  kind: 'hung' | 'trickle',
): Promise<{ addr: string; open: () => number; oldestMs: () => number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const openedAt = new Map<net.Socket, number>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    openedAt.set(socket, Date.now());
    socket.on('close', () => {
      sockets.delete(socket);
      openedAt.delete(socket);
    });
    socket.on('error', () => undefined);
    if (kind === 'trickle') {
      const reply = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n' + 'X-Slow: '.padEnd(10_000, 'x');
      let i = 0;
      const timer = setInterval(() => {
        if (socket.destroyed) return clearInterval(timer);
        socket.write(reply[i++ % reply.length]);
      }, 1_000);
      socket.on('close', () => clearInterval(timer));
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    addr: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    open: () => sockets.size,
    oldestMs: () => Math.max(0, ...[...openedAt.values()].map((t) => Date.now() - t)),
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('deadlines reach every Vault attempt', function () {
  this.timeout(60_000);
  let bao: OpenBao;
  let token: string;
  const plugins: TestPlugin[] = [];
  const request = (i = 0) => ({
    SecretName: `k${i}`,
    ServiceName: 'svc',
    TaskName: `svc.${i}`,
    SecretLabels: { 'dso.ref': `dso://secret/data/deadlines/app-${i % 100}#key` },
  });
  const start = (addresses: string[]) => {
    const plugin = startTestPlugin({
      VAULT_ADDR: addresses.join(','),
      VAULT_AUTH_METHOD: 'token',
      VAULT_TOKEN_FILE: credentialFile('deadlines-token', token),
      DSO_TIMEOUT: `${TIMEOUT_MS}ms`,
    });
    plugins.push(plugin);
    return plugin;
  };
  const timed = async (plugin: TestPlugin, i: number) => {
    const started = Date.now();
    const { reply, value } = await plugin.get(request(i));
    return { ms: Date.now() - started, err: reply.Err, value: value?.toString() };
  };

  before(async () => {
    bao = await sharedOpenBao();
    await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        bao.api('POST', `secret/data/deadlines/app-${i}`, { data: { key: VALUE } }),
      ),
    );
    await bao.api('PUT', 'sys/policies/acl/dso-deadlines', { policy: staticReadPolicy('secret/data/deadlines/*') });
    const created = await bao.api<{ auth: { client_token: string } }>('POST', 'auth/token/create', {
      policies: ['dso-deadlines'],
      ttl: '1h',
    });
    token = secret(created.auth.client_token);
  });

  after(() => plugins.forEach((p) => p.stop()));

  for (const kind of ['hung', 'trickle'] as const) {
    it(`serves past a ${kind} first address within DSO_TIMEOUT, then every request within 1 s`, async () => {
      const bad = await badServer(kind);
      try {
        const plugin = start([bad.addr, bao.addr]);
        const first = await timed(plugin, 0);
        expect(first.err).to.equal('');
        expect(first.value).to.equal(VALUE);
        expect(first.ms).to.be.below(TIMEOUT_MS);
        const later = [];
        for (let i = 1; i <= 20; i++) later.push(await timed(plugin, i));
        expect(
          later.filter((r) => r.err !== '' || r.value !== VALUE),
          'all served',
        ).to.deep.equal([]);
        expect(
          later.filter((r) => r.ms >= 1_000).map((r) => r.ms),
          'each within 1 s',
        ).to.deep.equal([]);
        const status = plugin.plugin.describe().vault as {
          addresses: Array<{ address: string; state: string; skipped: boolean }>;
        };
        expect(status.addresses[0]).to.include({ address: bad.addr, state: 'hung', skipped: true });
        expect(
          plugin.logs.filter((l) => l.includes('Vault not answering')).length,
          'the fault is logged once',
        ).to.equal(1);
      } finally {
        await bad.close();
      }
    });
  }

  it('100 GetSecrets at once against a trickling address: each answered within DSO_TIMEOUT + 1 s, no connection kept, a healthy address then served at once', async () => {
    const drip = await badServer('trickle');
    try {
      // Only the trickling address: every request has to give up, none may wait for a pooled connection.
      const alone = start([drip.addr]);
      const results = await Promise.all(Array.from({ length: 100 }, (_, i) => timed(alone, i)));
      expect(
        results.filter((r) => r.ms > TIMEOUT_MS + 1_000).map((r) => r.ms),
        'each within DSO_TIMEOUT + 1 s',
      ).to.deep.equal([]);
      expect(
        results.every((r) => /DSO_TIMEOUT/.test(r.err)),
        'each a clear Err',
      ).to.equal(true);
      // 100 connections were opened; what is still open is young (the background health
      // probe's, itself bounded): none was kept past its attempt.
      expect(drip.open(), 'connections to the trickling address still open').to.be.below(5);
      // (An attempt given all of DSO_TIMEOUT closes its connection at the deadline: allow the close a moment to arrive.)
      expect(drip.oldestMs(), 'age of the oldest open connection').to.be.below(TIMEOUT_MS + 250);

      // The trickling address first, a healthy one second: 100 in a row, all served.
      const both = start([drip.addr, bao.addr]);
      const served = await Promise.all(Array.from({ length: 100 }, (_, i) => timed(both, i)));
      expect(
        served.filter((r) => r.err !== '' || r.value !== VALUE).map((r) => r.err),
        'all served',
      ).to.deep.equal([]);
      expect(Math.max(...served.map((r) => r.ms))).to.be.below(TIMEOUT_MS + 1_000);
      const next = await timed(both, 7);
      expect(next.err).to.equal('');
      expect(next.ms, 'served at once').to.be.below(1_000);
    } finally {
      await drip.close();
    }
  });
});

describe('a leader election is waited out, with the same token', function () {
  this.timeout(30_000);
  const SECRET_ID = secret('deadlines-election-secret-id-7a1c');
  let bao: OpenBao;
  let front: http.Server;
  let electionUntil = 0;
  const refused: string[] = [];

  before(async () => {
    bao = await sharedOpenBao();
    await bao.api('POST', 'secret/data/deadlines/app-2', { data: { key: VALUE } });
    await bao.api('PUT', 'sys/policies/acl/dso-deadlines', { policy: staticReadPolicy('secret/data/deadlines/*') });
    await bao.api('POST', 'sys/auth/approle', { type: 'approle' }).catch(() => undefined);
    await bao.api('POST', 'auth/approle/role/deadlines-election', {
      token_policies: ['dso-deadlines'],
      token_ttl: '1h',
    });
    await bao.api('POST', 'auth/approle/role/deadlines-election/role-id', { role_id: 'deadlines-election-role' });
    await bao.api('POST', 'auth/approle/role/deadlines-election/custom-secret-id', { secret_id: SECRET_ID });
    // In front of OpenBao: what a cluster without an active node answers, until electionUntil.
    front = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (Date.now() < electionUntil) {
          refused.push(req.url ?? '');
          res
            .writeHead(500, { 'Content-Type': 'application/json' })
            .end(JSON.stringify({ errors: ['local node not active but active cluster node not found'] }));
          return;
        }
        const headers: Record<string, string> = { 'Content-Type': 'application/json' };
        if (req.headers['x-vault-token']) headers['X-Vault-Token'] = String(req.headers['x-vault-token']);
        void fetch(`${bao.addr}${req.url}`, {
          method: req.method,
          headers,
          body: chunks.length ? Buffer.concat(chunks) : undefined,
        })
          .then(async (upstream) =>
            res
              .writeHead(upstream.status, { 'Content-Type': 'application/json' })
              .end(Buffer.from(await upstream.arrayBuffer())),
          )
          .catch(() => res.writeHead(502).end());
      });
    });
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', () => r()));
  });

  after(() => front?.close());

  it('retries the AppRole login and the reads through "local node not active" until the new active node answers', async () => {
    electionUntil = Date.now() + 1_500;
    const plugin = startTestPlugin({
      VAULT_ADDR: `http://127.0.0.1:${(front.address() as net.AddressInfo).port}`,
      VAULT_AUTH_METHOD: 'approle',
      VAULT_ROLE_ID: 'deadlines-election-role',
      VAULT_SECRET_ID_FILE: credentialFile('election-secret-id', SECRET_ID),
      DSO_TIMEOUT: '5s',
    });
    try {
      const request = {
        SecretName: 'k',
        ServiceName: 'svc',
        SecretLabels: { 'dso.ref': 'dso://secret/data/deadlines/app-2#key' },
      };
      const first = await plugin.get(request);
      expect(first.reply.Err).to.equal('');
      expect(first.value!.toString()).to.equal(VALUE);
      expect(
        refused.some((u) => u.startsWith('/v1/auth/approle/login')),
        'the login met the election',
      ).to.equal(true);

      // A second election while logged in: the read waits it out and the token is kept.
      refused.length = 0;
      electionUntil = Date.now() + 1_500;
      const started = Date.now();
      const second = await plugin.get({ ...request, TaskName: 'svc.2' });
      expect(second.reply.Err).to.equal('');
      expect(Date.now() - started).to.be.within(1_000, 5_000);
      expect(refused.length, 'attempts refused during the election').to.be.greaterThan(1);
      const token = (plugin.plugin.describe().vault as { token: { logins: number } }).token;
      expect(token.logins, 'logins').to.equal(1);
      expect(plugin.logs.filter((l) => l.includes('Vault login failed'))).to.deep.equal([]);
    } finally {
      plugin.stop();
    }
  });
});

describe('redirects and the token', function () {
  this.timeout(30_000);
  let bao: OpenBao;
  let token: string;
  const plugins: TestPlugin[] = [];
  const request = {
    SecretName: 'k',
    ServiceName: 'svc',
    SecretLabels: { 'dso.ref': 'dso://secret/data/deadlines/app-1#key' },
  };
  const servers: http.Server[] = [];
  const listen = async (handler: http.RequestListener) => {
    const server = http.createServer(handler);
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    return (server.address() as net.AddressInfo).port;
  };

  before(async () => {
    bao = await sharedOpenBao();
    await bao.api('POST', 'secret/data/deadlines/app-1', { data: { key: VALUE } });
    await bao.api('PUT', 'sys/policies/acl/dso-deadlines', { policy: staticReadPolicy('secret/data/deadlines/*') });
    const created = await bao.api<{ auth: { client_token: string } }>('POST', 'auth/token/create', {
      policies: ['dso-deadlines'],
      ttl: '1h',
    });
    token = secret(created.auth.client_token);
  });

  after(() => {
    plugins.forEach((p) => p.stop());
    servers.forEach((s) => s.close());
  });

  const start = (addresses: string[]) => {
    const plugin = startTestPlugin({
      VAULT_ADDR: addresses.join(','),
      VAULT_AUTH_METHOD: 'token',
      VAULT_TOKEN_FILE: credentialFile('redirect-token', token),
      DSO_TIMEOUT: '3s',
    });
    plugins.push(plugin);
    return plugin;
  };

  it('refuses a redirect to a host not in VAULT_ADDR, naming it, and the token never reaches it', async () => {
    const reached: Array<string | undefined> = [];
    // "localhost" is another host name than the 127.0.0.1 the operator named.
    const elsewhere = await listen((req, res) => {
      reached.push(req.headers['x-vault-token'] as string | undefined);
      res.writeHead(500).end();
    });
    const front = await listen((req, res) =>
      res.writeHead(307, { Location: `http://localhost:${elsewhere}${req.url}` }).end(),
    );
    const plugin = start([`http://127.0.0.1:${front}`]);
    const { reply } = await plugin.get(request);
    expect(reply.Err).to.contain(`redirected to http://localhost:${elsewhere}, which is not in VAULT_ADDR`);
    expect(reached, 'requests that reached the other host').to.deep.equal([]);
  });

  it('follows a redirect to another address in VAULT_ADDR', async () => {
    const named = `http://localhost:${bao.port}`;
    const front = await listen((req, res) => res.writeHead(307, { Location: `${named}${req.url}` }).end());
    const plugin = start([`http://127.0.0.1:${front}`, named]);
    const { reply, value } = await plugin.get(request);
    expect(reply.Err).to.equal('');
    expect(value!.toString()).to.equal(VALUE);
  });

  it('warns at start that a plain http address carries the token unencrypted', () => {
    const plugin = start(['http://127.0.0.1:1', 'https://127.0.0.1:2']);
    const warning = plugin.logs
      .map((l) => JSON.parse(l) as { message: string; addresses?: string[] })
      .find((l) => /unencrypted/.test(l.message));
    expect(warning?.addresses).to.deep.equal(['http://127.0.0.1:1']);
  });
});
