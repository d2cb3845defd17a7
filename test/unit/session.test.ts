// Authenticated Vault calls: audit headers, and a fresh login with one retry only when a
// 403 comes from a token that went stale (not from a policy that denies the path).
import { expect } from 'chai';
import type { VaultCall } from '../../src/vault/client';
import { VaultApiError, VaultUnavailableError } from '../../src/vault/errors';
import { auditHeaders, VaultSession } from '../../src/vault/session';
import { TokenManager } from '../../src/vault/token';
import { FakeAuthMethod, fakeVault } from './fakes';
import { rejected, silent } from './helpers';

const PATH = 'secret/data/app/db';
const denied = (path: string) => new VaultApiError(403, ['permission denied'], path);

/**
 * A session over a fake Vault; tokens never expire, so only the session causes logins. No
 * wait for replication unless `replicationGraceMs` says so (every token here is seconds young).
 */
function session(handler: (call: VaultCall) => unknown, replicationGraceMs = 0) {
  const vault = fakeVault(handler);
  const method = new FakeAuthMethod();
  const tokens = new TokenManager({ vault: vault.client, method, logger: silent(), timeoutMs: 1000 });
  return { session: new VaultSession(vault.client, tokens, replicationGraceMs), vault, method, tokens };
}

/** A session whose reads of PATH are refused (403); every other call (lookup-self) gets `otherwise()`. */
function pathDenied(otherwise: () => unknown) {
  return session((call) => {
    if (call.path === PATH) throw denied(PATH);
    return otherwise();
  });
}

/** A session whose first token Vault refuses everywhere (revoked, or unknown to the node); later ones work. */
function firstTokenRefused(replicationGraceMs = 0) {
  return session((call) => {
    if (call.token === 'hvs.fake-token-1') throw denied(call.path);
    return { data: { data: { password: 'fresh' } } };
  }, replicationGraceMs);
}

const deadline = () => Date.now() + 1000;

describe('VaultSession', () => {
  it('calls Vault with the current token', async () => {
    const { session: s, vault } = session(() => ({ data: { data: { password: 'x' } } }));
    const body = await s.call({ method: 'GET', path: PATH, deadline: deadline() });
    expect(body).to.deep.equal({ data: { data: { password: 'x' } } });
    expect(vault.calls).to.have.length(1);
    expect(vault.calls[0]).to.include({ method: 'GET', path: PATH, token: 'hvs.fake-token-1' });
  });

  it('throws a 403 without logging in again when lookup-self says the token is still valid (a policy denial)', async () => {
    const { session: s, vault, method } = pathDenied(() => ({ data: { ttl: 100 } }));
    const err = await rejected(s.call({ method: 'GET', path: PATH, deadline: deadline() }));
    expect(err).to.be.instanceOf(VaultApiError);
    expect((err as VaultApiError).status).to.equal(403);
    expect(method.logins).to.equal(1);
    expect(vault.callsTo(PATH)).to.have.length(1);
    expect(vault.callsTo('auth/token/lookup-self')).to.have.length(1);
    expect(vault.callsTo('auth/token/lookup-self')[0].token).to.equal('hvs.fake-token-1');
  });

  it('does not ask lookup-self again for every denial in a burst', async () => {
    const { session: s, vault, method } = pathDenied(() => ({ data: {} }));
    for (let i = 0; i < 3; i++) await rejected(s.call({ method: 'GET', path: PATH, deadline: deadline() }));
    expect(vault.callsTo('auth/token/lookup-self')).to.have.length(1);
    expect(method.logins).to.equal(1);
  });

  it('logs in once and retries once when lookup-self also answers 403 (a stale token)', async () => {
    const used: string[] = [];
    const { session: s, vault, method } = firstTokenRefused();
    const body = await s.call({ method: 'GET', path: PATH, deadline: deadline(), usedToken: (t) => used.push(t) });
    expect(body).to.deep.equal({ data: { data: { password: 'fresh' } } });
    expect(method.logins).to.equal(2);
    expect(vault.callsTo(PATH).map((c) => c.token)).to.deep.equal(['hvs.fake-token-1', 'hvs.fake-token-2']);
    expect(vault.callsTo('auth/token/lookup-self')).to.have.length(1);
    expect(used).to.deep.equal(['hvs.fake-token-2']);
  });

  it('asks again with a young token a standby does not know yet (replication lag), without logging in again', async () => {
    let refusals = 0;
    const {
      session: s,
      vault,
      method,
    } = session((call) => {
      // The node that answers learns of the new token after three refusals (its read and lookup-self).
      if (refusals < 3) {
        refusals++;
        throw denied(call.path);
      }
      return { data: { data: { password: 'replicated' } } };
    }, 5_000);
    const body = await s.call({ method: 'GET', path: PATH, deadline: Date.now() + 5_000 });
    expect(body).to.deep.equal({ data: { data: { password: 'replicated' } } });
    expect(method.logins, 'no second login: it would mint another token with the same lag').to.equal(1);
    expect(vault.callsTo(PATH).map((c) => c.token)).to.deep.equal([
      'hvs.fake-token-1',
      'hvs.fake-token-1',
      'hvs.fake-token-1',
    ]);
  });

  it('logs in again once the young token is still refused after the replication grace', async () => {
    const { session: s, vault, method } = firstTokenRefused(300);
    const body = await s.call({ method: 'GET', path: PATH, deadline: Date.now() + 5_000 });
    expect(body).to.deep.equal({ data: { data: { password: 'fresh' } } });
    expect(method.logins).to.equal(2);
    const tokens = vault.callsTo(PATH).map((c) => c.token);
    expect(tokens[tokens.length - 1]).to.equal('hvs.fake-token-2');
    expect(tokens.filter((t) => t === 'hvs.fake-token-1').length, 'asked again within 300 ms only').to.be.within(2, 4);
  });

  it('gives up after that one retry when the fresh token is denied too', async () => {
    const {
      session: s,
      vault,
      method,
    } = session(() => {
      throw denied(PATH);
    });
    const err = await rejected(s.call({ method: 'GET', path: PATH, deadline: deadline() }));
    expect((err as VaultApiError).status).to.equal(403);
    expect(method.logins).to.equal(2);
    expect(vault.callsTo(PATH)).to.have.length(2);
  });

  it('treats a token as alive when lookup-self cannot be asked (Vault unreachable)', async () => {
    const { session: s, method } = pathDenied(() => {
      throw new VaultUnavailableError('https://vault:8200', 'connection refused');
    });
    expect((await rejected(s.call({ method: 'GET', path: PATH, deadline: deadline() }))).code).to.equal(
      'ERR_VAULT_DENIED',
    );
    expect(method.logins).to.equal(1);
  });

  for (const status of [404, 400, 500]) {
    it(`throws a ${status} as it is, without lookup-self or login`, async () => {
      const {
        session: s,
        vault,
        method,
      } = session(() => {
        throw new VaultApiError(status, ['nope'], PATH);
      });
      const err = await rejected(s.call({ method: 'GET', path: PATH, deadline: deadline() }));
      expect((err as VaultApiError).status).to.equal(status);
      expect(vault.calls).to.have.length(1);
      expect(method.logins).to.equal(1);
    });
  }

  it('tells usedToken which token made a successful call', async () => {
    const used: string[] = [];
    const { session: s } = session(() => ({}));
    await s.call({ method: 'GET', path: PATH, deadline: deadline(), usedToken: (t) => used.push(t) });
    expect(used).to.deep.equal(['hvs.fake-token-1']);
  });

  describe('audit headers', () => {
    it("sends X-DSO-Service, X-DSO-Task and X-DSO-Secret with every call, beside the caller's headers", async () => {
      const { session: s, vault } = session(() => ({}));
      await s.call({
        method: 'GET',
        path: PATH,
        deadline: deadline(),
        headers: { 'X-Other': '1' },
        workload: { service: 'web', task: 'web.1.abc', secret: 'db_password' },
      });
      expect(vault.calls[0].headers).to.deep.equal({
        'X-Other': '1',
        'X-DSO-Service': 'web',
        'X-DSO-Task': 'web.1.abc',
        'X-DSO-Secret': 'db_password',
      });
    });

    it('sends the headers on the retry after a stale token too', async () => {
      const { session: s, vault } = session((call) => {
        if (call.token === 'hvs.fake-token-1') throw denied(call.path);
        return {};
      });
      await s.call({ method: 'GET', path: PATH, deadline: deadline(), workload: { service: 'web' } });
      expect(vault.callsTo(PATH).map((c) => c.headers?.['X-DSO-Service'])).to.deep.equal(['web', 'web']);
    });

    it('omits the headers of absent facts', () => {
      expect(auditHeaders(undefined)).to.deep.equal({});
      expect(auditHeaders({ service: 'web' })).to.deep.equal({ 'X-DSO-Service': 'web' });
    });

    it('percent-encodes non-ASCII and control characters, so each value is visible ASCII', () => {
      const headers = auditHeaders({ service: 'wéb 服务', task: 'a\r\nInjected: yes', secret: 'db' });
      expect(headers['X-DSO-Service']).to.equal('w%C3%A9b%20%E6%9C%8D%E5%8A%A1');
      expect(headers['X-DSO-Task']).to.equal('a%0D%0AInjected%3A%20yes');
      for (const value of Object.values(headers)) expect(value).to.match(/^[\x21-\x7e]+$/);
      expect(decodeURIComponent(headers['X-DSO-Service'])).to.equal('wéb 服务');
    });

    it('bounds a header value to 256 characters', () => {
      expect(auditHeaders({ service: 'x'.repeat(1000) })['X-DSO-Service']).to.have.length(256);
    });

    it('keeps a truncated header value decodable (no escape cut in half)', () => {
      const value = auditHeaders({ service: 'é'.repeat(100) })['X-DSO-Service'];
      expect(value.length).to.be.at.most(256);
      expect(() => decodeURIComponent(value)).to.not.throw();
    });
  });
});
