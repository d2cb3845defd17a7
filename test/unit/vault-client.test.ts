// The Vault client's view of an address, against a loopback HTTP server that plays Vault
// (no OpenBao needed for this): when it is marked down, and what counts as a recovery.
import { expect } from 'chai';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { VaultClient } from '../../src/vault/client';
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
