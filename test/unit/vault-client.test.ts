// The Vault client's view of an address, against a loopback HTTP server that plays Vault
// (no OpenBao needed for this): when it is marked down, and what counts as a recovery.
import { expect } from 'chai';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { VaultClient } from '../../src/vault/client';
import { createAgents, createTransport } from '../../src/vault/transport';
import { capturingLogger, sleep } from './helpers';

describe('VaultClient: faults and recoveries of an address', () => {
  let server: http.Server;
  let address = '';
  /** How the fake Vault treats the next requests: answer after a delay, or reset the connection. */
  let mode: { kind: 'answer'; delayMs: number } | { kind: 'reset' } = { kind: 'answer', delayMs: 0 };

  before(async () => {
    server = http.createServer((req, res) => {
      const now = mode;
      if (now.kind === 'reset') return req.socket.destroy();
      setTimeout(
        () => res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"data":{"k":"v"}}'),
        now.delayMs,
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    address = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  /** A client of the fake Vault whose log lines are kept; probes far apart, so only requests move its state. */
  function watchedClient(options: { rounds?: number } = {}) {
    const { logger, lines } = capturingLogger();
    const client = new VaultClient({
      addresses: [address],
      tls: { skipVerify: false },
      logger,
      probeIntervalMs: 60_000,
      ...options,
    });
    const count = (message: string) => lines.filter((l) => l.includes(`"${message}"`)).length;
    const read = (path: string, withinMs = 5_000) =>
      client.call({ method: 'GET', path, deadline: Date.now() + withinMs });
    return { client, count, read };
  }

  it('does not take a late answer to a request sent before the fault for a recovery', async () => {
    const { client, count, read } = watchedClient({ rounds: 1 });
    try {
      mode = { kind: 'answer', delayMs: 300 };
      const early = read('secret/x');
      await sleep(50);
      mode = { kind: 'reset' };
      await read('secret/y').catch(() => undefined);
      expect(count('Vault not answering')).to.equal(1);
      await early; // sent before the fault was seen, answered after it
      expect(count('Vault answering again'), 'a stale answer is no recovery').to.equal(0);
      mode = { kind: 'answer', delayMs: 0 };
      await read('secret/z');
      expect(count('Vault answering again')).to.equal(1);
      expect(count('Vault not answering')).to.equal(1);
    } finally {
      client.close();
    }
  });

  it('does not take a late failure of a request sent before the recovery for a new fault', async () => {
    const { client, count, read } = watchedClient({ rounds: 1 });
    try {
      mode = { kind: 'reset' };
      await read('secret/a').catch(() => undefined);
      expect(count('Vault not answering')).to.equal(1);
      mode = { kind: 'answer', delayMs: 1_000 };
      const slow = read('secret/b', 400).then(
        () => 'answered',
        () => 'failed',
      );
      await sleep(50);
      mode = { kind: 'answer', delayMs: 0 };
      await read('secret/c');
      expect(count('Vault answering again')).to.equal(1);
      expect(await slow).to.equal('failed'); // hung through the recovery, fails after it
      expect(count('Vault not answering'), 'a stale failure is no new fault').to.equal(1);
      expect(client.status()[0].skipped).to.equal(false);
    } finally {
      client.close();
    }
  });
  it("does not mark an address hung for an attempt cut short by the caller's nearly spent deadline", async () => {
    const { client, count, read } = watchedClient();
    const faults = () => count('Vault not answering');
    try {
      mode = { kind: 'answer', delayMs: 1_000 };
      await read('secret/a', 50).catch(() => undefined);
      expect(faults(), 'a 50 ms attempt proves nothing').to.equal(0);
      expect(client.status()[0].skipped).to.equal(false);
      await read('secret/b', 600).catch(() => undefined);
      expect(faults(), 'a 600 ms attempt without an answer does').to.equal(1);
    } finally {
      mode = { kind: 'answer', delayMs: 0 };
      client.close();
    }
  });
});

describe('VaultClient: health probes and reads never share a connection', () => {
  let server: http.Server;
  let address = '';
  /** Each request the fake Vault saw: its path and the client port of its connection. */
  const seen: Array<{ url: string; port: number }> = [];

  before(async () => {
    server = http.createServer((req, res) => {
      seen.push({ url: req.url ?? '', port: req.socket.remotePort ?? 0 });
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"data":{"k":"v"}}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    address = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  it("probes on a connection of their own, so a probe never takes or adds to the reads' pool", async () => {
    const client = new VaultClient({
      addresses: [address],
      tls: { skipVerify: false },
      probeIntervalMs: 20,
      logger: capturingLogger().logger,
    });
    try {
      const read = (path: string) => client.call({ method: 'GET', path, deadline: Date.now() + 5_000 });
      await read('secret/a'); // the first call starts the probes; the first is due at once
      for (let i = 0; i < 50 && !seen.some((s) => s.url === '/v1/sys/health'); i++) await sleep(10);
      await read('secret/b');
      await read('secret/c');
      const probes = seen.filter((s) => s.url === '/v1/sys/health').map((s) => s.port);
      const reads = seen.filter((s) => s.url !== '/v1/sys/health').map((s) => s.port);
      expect(probes, 'a probe was sent').to.have.length.greaterThan(0);
      expect(new Set(reads).size, 'reads one at a time reuse one connection').to.equal(1);
      expect(
        probes.filter((p) => reads.includes(p)),
        "probes on the reads' connection",
      ).to.deep.equal([]);
    } finally {
      client.close();
    }
  });
});

describe('VaultClient: the storage index (X-Vault-Index) it has seen goes with every request', () => {
  let server: http.Server;
  let address = '';
  /** The index the fake OpenBao puts on its next answers (none: a server without the header). */
  let answerIndex: string | undefined;
  const received: Array<{ method: string; url: string; index?: string; inconsistent?: string }> = [];
  const index = (value: string, cluster = 'c1') => Buffer.from(JSON.stringify({ cluster, value })).toString('base64');

  before(async () => {
    server = http.createServer((req, res) => {
      received.push({
        method: req.method ?? '',
        url: req.url ?? '',
        index: req.headers['x-vault-index'] as string | undefined,
        inconsistent: req.headers['x-vault-inconsistent'] as string | undefined,
      });
      req.resume();
      req.on('end', () => {
        const headers: Record<string, string> = { 'Content-Type': 'application/json' };
        if (answerIndex) headers['X-Vault-Index'] = answerIndex;
        res.writeHead(200, headers).end('{"data":{"k":"v"},"auth":{"client_token":"t"}}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    address = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());
  let c: VaultClient;
  beforeEach(() => {
    received.length = 0;
    answerIndex = undefined;
    c = new VaultClient({ addresses: [address], tls: { skipVerify: false }, logger: capturingLogger().logger });
  });
  afterEach(() => c.close());

  const read = () => c.call({ method: 'GET', path: 'secret/data/x', deadline: Date.now() + 5_000 });
  const login = () =>
    c.call({ method: 'PUT', path: 'auth/approle/login', body: { role_id: 'r' }, deadline: Date.now() + 5_000 });
  const last = () => received[received.length - 1];

  it('sends nothing to a server that sends no index', async () => {
    await read();
    await login();
    await read();
    expect(received.map((r) => [r.index, r.inconsistent])).to.deep.equal([
      [undefined, undefined],
      [undefined, undefined],
      [undefined, undefined],
    ]);
  });

  it("sends a write's index, and a read's, with forward-active-node on the next requests (reads and writes)", async () => {
    answerIndex = index('41');
    await login(); // through node-vault: its answer's index is learned too
    await read();
    expect(last()).to.include({ method: 'GET', index: index('41'), inconsistent: 'forward-active-node' });
    answerIndex = index('57');
    await read();
    await login();
    expect(last()).to.include({ method: 'PUT', index: index('57'), inconsistent: 'forward-active-node' });
  });

  it('never goes back to a lower index of the same cluster; another cluster or a non-numeric value replaces it', async () => {
    answerIndex = index('100');
    await read();
    answerIndex = index('99'); // a standby that trails
    await read();
    await read();
    expect(last().index).to.equal(index('100'));
    answerIndex = index('7', 'c2');
    await read();
    await read();
    expect(last().index).to.equal(index('7', 'c2'));
    answerIndex = index('opaque-pg-lsn', 'c2');
    await read();
    await read();
    expect(last().index).to.equal(index('opaque-pg-lsn', 'c2'));
  });

  it('ignores what is not an OpenBao index (Vault Enterprise replication state, garbage)', async () => {
    for (const bad of ['v1:Zm9vYmFy', 'not base64 !', Buffer.from('[1,2]').toString('base64'), index('5').slice(3)]) {
      answerIndex = bad;
      await read();
    }
    await read();
    expect(received.every((r) => r.index === undefined && r.inconsistent === undefined)).to.equal(true);
  });
});

describe("VaultClient: connections kept for reuse, as the server's Keep-Alive hint allows", () => {
  let server: http.Server;
  let address = '';
  /** The Keep-Alive header the fake Vault answers with, if any. */
  let hint: string | undefined;
  /** The client port of each request's connection. */
  const ports: number[] = [];

  before(async () => {
    server = http.createServer((req, res) => {
      ports.push(req.socket.remotePort ?? 0);
      res.writeHead(200, { 'Content-Type': 'application/json', ...(hint ? { 'Keep-Alive': hint } : {}) });
      res.end('{"data":{"k":"v"}}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    address = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  /** How many connections five reads one after the other took. */
  async function connectionsFor(keepAlive: string | undefined): Promise<number> {
    hint = keepAlive;
    ports.length = 0;
    const client = new VaultClient({
      addresses: [address],
      tls: { skipVerify: false },
      logger: capturingLogger().logger,
    });
    try {
      // One after the other: each read finds the last one's socket free, if it was kept (a
      // request puts the sockets whose answers ended back in the pool first: transport.ts).
      for (let i = 0; i < 5; i++)
        await client.call({ method: 'GET', path: `secret/${i}`, deadline: Date.now() + 5_000 });
    } finally {
      client.close();
    }
    return new Set(ports).size;
  }

  it('reuses one connection without a hint, or with a timeout longer than a second', async () => {
    expect(await connectionsFor(undefined)).to.equal(1);
    expect(await connectionsFor('timeout=5, max=100')).to.equal(1);
    expect(await connectionsFor('timeout=2')).to.equal(1);
  });

  it('does not reuse a connection the server says it closes within a second', async () => {
    expect(await connectionsFor('timeout=1')).to.equal(5);
  });
});

describe('Vault transport: a connection goes back to the pool after the answer was handled', () => {
  let server: http.Server;
  let address = '';
  /** The client port of each request's connection. */
  const ports: number[] = [];

  before(async () => {
    server = http.createServer((req, res) => {
      ports.push(req.socket.remotePort ?? 0);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"data":{"k":"v"}}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    address = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());
  beforeEach(() => (ports.length = 0));

  function pooled(agent: http.Agent): number {
    return Object.values(agent.freeSockets).reduce((n, sockets) => n + (sockets?.length ?? 0), 0);
  }

  /** Runs `test` with a transport on agents of its own, destroyed afterwards. */
  async function withTransport(
    test: (agent: http.Agent, get: (path: string) => Promise<{ statusCode: number }>) => Promise<void>,
  ): Promise<void> {
    const agents = createAgents({});
    const transport = createTransport(agents);
    try {
      await test(agents.http, (path) => transport({ uri: `${address}/v1/${path}`, method: 'GET' }));
    } finally {
      agents.http.destroy();
    }
  }

  it("continues the caller before node's agent pools the socket, and pools it in the same turn", () =>
    withTransport(async (agent, get) => {
      expect((await get('secret/a')).statusCode).to.equal(200);
      // Node's agent would have pooled it in a nextTick callback that came before this line.
      expect(pooled(agent), 'pooled before the caller continued').to.equal(0);
      await new Promise((resolve) => process.nextTick(resolve));
      expect(pooled(agent), 'pooled once the continuations ran').to.equal(1);
    }));

  it('reuses the connections for the next requests, one after the other or 16 at a time', () =>
    withTransport(async (agent, get) => {
      for (let i = 0; i < 5; i++) await get(`secret/${i}`);
      expect(new Set(ports).size).to.equal(1);
      for (let round = 0; round < 3; round++)
        await Promise.all(Array.from({ length: 16 }, (_, i) => get(`secret/${i}`)));
      expect(new Set(ports).size).to.be.at.most(16);
      await new Promise((resolve) => setImmediate(resolve));
      expect(pooled(agent)).to.equal(new Set(ports).size);
    }));

  it('survives a pooled connection the server closes, and the next request gets a new one', () =>
    withTransport(async (agent, get) => {
      await get('secret/a');
      await new Promise((resolve) => setImmediate(resolve));
      server.closeAllConnections();
      await sleep(50);
      expect(pooled(agent)).to.equal(0);
      expect((await get('secret/b')).statusCode).to.equal(200);
      expect(new Set(ports).size).to.equal(2);
    }));
});

describe('VaultClient: the headers a request carries', () => {
  let server: http.Server;
  let port = 0;
  /** Each request's headers as sent (names in their case, in their order). */
  const received: Array<{ method: string; raw: string[] }> = [];

  before(async () => {
    server = http.createServer((req, res) => {
      received.push({ method: req.method ?? '', raw: req.rawHeaders });
      req.resume();
      req.on('end', () =>
        res
          .writeHead(200, { 'Content-Type': 'application/json' })
          .end('{"data":{"k":"v"},"auth":{"client_token":"t"}}'),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as AddressInfo).port;
  });
  after(() => server.close());
  beforeEach(() => (received.length = 0));

  /** Every header name (lowercased) with the values it was sent with. */
  const headersOf = (raw: string[]) => {
    const out: Record<string, string[]> = {};
    for (let i = 0; i < raw.length; i += 2) (out[raw[i].toLowerCase()] ??= []).push(raw[i + 1]);
    return out;
  };

  async function exchange(address: string) {
    const c = new VaultClient({ addresses: [address], tls: { skipVerify: false }, logger: capturingLogger().logger });
    try {
      await c.call({ method: 'GET', path: 'secret/data/x', token: 'read-token', deadline: Date.now() + 5_000 });
      await c.call({
        method: 'PUT',
        path: 'auth/approle/login',
        body: { role_id: 'r' },
        deadline: Date.now() + 5_000,
      });
    } finally {
      c.close();
    }
    return received.map((r) => ({ method: r.method, headers: headersOf(r.raw) }));
  }

  it('sends Host as the address writes it, Accept and the token once each, and a body with its type and length', async () => {
    const [read, write] = await exchange(`http://127.0.0.1:${port}`);
    expect(read.method).to.equal('GET');
    expect(read.headers.host).to.deep.equal([`127.0.0.1:${port}`]);
    expect(read.headers.accept).to.deep.equal(['application/json']);
    expect(read.headers['x-vault-token']).to.deep.equal(['read-token']);
    expect(read.headers.connection).to.deep.equal(['keep-alive']);
    expect(read.headers).to.not.have.property('authorization');
    expect(write.method).to.equal('PUT');
    expect(write.headers.host).to.deep.equal([`127.0.0.1:${port}`]);
    expect(write.headers.accept).to.deep.equal(['application/json']);
    expect(write.headers['content-type']).to.deep.equal(['application/json']);
    expect(write.headers['content-length']).to.deep.equal([String(Buffer.byteLength('{"role_id":"r"}'))]);
  });

  it('sends credentials written in the address as basic authorization, percent-decoded', async () => {
    const [read, write] = await exchange(`http://dso:p%40ss@127.0.0.1:${port}`);
    const basic = `Basic ${Buffer.from('dso:p@ss').toString('base64')}`;
    expect(read.headers.authorization).to.deep.equal([basic]);
    expect(write.headers.authorization).to.deep.equal([basic]);
    expect(read.headers.host).to.deep.equal([`127.0.0.1:${port}`]);
  });
});
