// The plugin's Vault token: shared logins, failure backoff, invalidation, renewal at about
// two thirds of the TTL, a new login at max TTL, and a status that never shows the token.
import { expect } from 'chai';
import { VaultApiError, VaultUnavailableError } from '../../src/vault/errors';
import { TokenManager, TokenManagerOptions } from '../../src/vault/token';
import { FakeAuthMethod, fakeVault, loginOf } from './fakes';
import { capturingLogger, deferred, rejected, sleep } from './helpers';

const TOKEN = 'hvs.token-canary-5e8a1f';

function manager(
  method: FakeAuthMethod,
  extra: Partial<TokenManagerOptions> & { handler?: Parameters<typeof fakeVault>[0] } = {},
) {
  const vault = fakeVault(extra.handler ?? (() => ({})));
  const log = capturingLogger('debug');
  const tokens = new TokenManager({
    vault: vault.client,
    method,
    logger: log.logger,
    timeoutMs: 1000,
    random: () => 0.5,
    ...extra,
  });
  return { tokens, vault, ...log };
}

const soon = () => Date.now() + 1000;

describe('TokenManager', () => {
  const managers: TokenManager[] = [];
  const track = <T extends { tokens: TokenManager }>(m: T): T => {
    managers.push(m.tokens);
    return m;
  };
  afterEach(() => managers.splice(0).forEach((t) => t.stop()));

  describe('login', () => {
    it('logs in on first use and then hands out the same token', async () => {
      const method = new FakeAuthMethod();
      const { tokens } = track(manager(method));
      expect(await tokens.token(soon())).to.equal('hvs.fake-token-1');
      expect(await tokens.token(soon())).to.equal('hvs.fake-token-1');
      expect(method.logins).to.equal(1);
    });

    it('lets concurrent token() calls share one login', async () => {
      const gate = deferred<void>();
      const method = new FakeAuthMethod(async (n) => {
        await gate.promise;
        return loginOf(`hvs.fake-token-${n}`);
      });
      const { tokens } = track(manager(method));
      const waiting = Array.from({ length: 8 }, () => tokens.token(soon()));
      await sleep(5);
      gate.resolve();
      expect(await Promise.all(waiting)).to.deep.equal(Array(8).fill('hvs.fake-token-1'));
      expect(method.logins).to.equal(1);
      expect(tokens.status().logins).to.equal(1);
    });

    it('passes the deadline to the login method', async () => {
      const method = new FakeAuthMethod();
      const { tokens, vault } = track(manager(method));
      const deadline = Date.now() + 4321;
      await tokens.token(deadline);
      expect(method.contexts[0].deadline).to.equal(deadline);
      expect(method.contexts[0].vault).to.equal(vault.client);
    });

    it('reports a refused login as ERR_LOGIN naming the method, the mount, the reason and a hint', async () => {
      const method = new FakeAuthMethod(() =>
        Promise.reject(new VaultApiError(400, ['invalid role or secret ID'], 'auth/approle/login')),
      );
      const { tokens, records } = track(manager(method));
      const err = await rejected(tokens.token(soon()));
      expect(err.code).to.equal('ERR_LOGIN');
      expect(err.message).to.include('approle');
      expect(err.message).to.include('auth/approle');
      expect(err.message).to.include('invalid role or secret ID');
      expect(err.message).to.include('fake-hint-about(invalid role or secret ID)');
      const logged = records().filter((r) => r.message === 'Vault login failed');
      expect(logged).to.have.length(1);
      expect(logged[0]).to.include({ level: 'error', method: 'approle', mount: 'auth/approle', code: 'ERR_LOGIN' });
    });

    it('reports a permission denied login as ERR_LOGIN too', async () => {
      const method = new FakeAuthMethod(() =>
        Promise.reject(new VaultApiError(403, ['permission denied'], 'auth/approle/login')),
      );
      const { tokens } = track(manager(method));
      expect((await rejected(tokens.token(soon()))).code).to.equal('ERR_LOGIN');
    });

    it('keeps the code of an unreachable Vault, naming method and mount', async () => {
      const method = new FakeAuthMethod(() =>
        Promise.reject(new VaultUnavailableError('https://vault:8200', 'connection refused')),
      );
      const { tokens } = track(manager(method));
      const err = await rejected(tokens.token(soon()));
      expect(err.code).to.equal('ERR_VAULT_UNAVAILABLE');
      expect(err.message).to.include('approle login at auth/approle failed');
      expect(err.message).to.include('connection refused');
    });

    it('reduces an unexpected error to a message without its internals', async () => {
      const method = new FakeAuthMethod(() => Promise.reject(new Error(`socket hang up X-Vault-Token: ${TOKEN}`)));
      const { tokens, lines } = track(manager(method));
      const err = await rejected(tokens.token(soon()));
      expect(err.code).to.equal('ERR_LOGIN');
      expect(err.message).to.not.include(TOKEN);
      expect(lines.join('\n')).to.not.include(TOKEN);
    });

    it('does not retry a failed login within retryAfterFailureMs: callers get the same error', async () => {
      let clock = 1_000_000;
      const method = new FakeAuthMethod(() =>
        Promise.reject(new VaultApiError(400, ['invalid secret id'], 'auth/approle/login')),
      );
      const { tokens, records } = track(manager(method, { retryAfterFailureMs: 5000, now: () => clock }));
      const first = await rejected(tokens.token(clock + 1000));
      const second = await rejected(tokens.token(clock + 1000));
      clock += 4000;
      const third = await rejected(tokens.login());
      expect(method.logins).to.equal(1);
      expect(second).to.equal(first);
      expect(third).to.equal(first);
      expect(tokens.status().lastError).to.equal(first.message);

      clock += 1001;
      await rejected(tokens.token(clock + 1000));
      expect(method.logins).to.equal(2);
      // The same failure again is not logged again.
      expect(records().filter((r) => r.message === 'Vault login failed')).to.have.length(1);
    });

    it('shares one failing login among concurrent callers', async () => {
      const method = new FakeAuthMethod(async () => {
        await sleep(5);
        throw new VaultApiError(400, ['invalid secret id'], 'auth/approle/login');
      });
      const { tokens } = track(manager(method, { retryAfterFailureMs: 5000 }));
      const errors = await Promise.all(Array.from({ length: 5 }, () => rejected(tokens.token(soon()))));
      expect(method.logins).to.equal(1);
      expect(errors.every((e) => e.code === 'ERR_LOGIN')).to.equal(true);
    });

    it('logs in again once a login succeeds after failures, and clears the error', async () => {
      let clock = 1_000_000;
      const method = new FakeAuthMethod((n) =>
        n === 1 ? Promise.reject(new VaultApiError(400, ['invalid secret id'], 'x')) : loginOf('hvs.fake-token-ok'),
      );
      const { tokens, records } = track(manager(method, { retryAfterFailureMs: 100, now: () => clock }));
      await rejected(tokens.token(clock + 1000));
      clock += 200;
      expect(await tokens.token(clock + 1000)).to.equal('hvs.fake-token-ok');
      expect(tokens.status().lastError).to.equal(undefined);
      expect(records().some((r) => r.message === 'Vault login succeeded again')).to.equal(true);
    });
  });

  describe('invalidate', () => {
    it('forces a new login for the refused token', async () => {
      const method = new FakeAuthMethod();
      const { tokens } = track(manager(method));
      expect(await tokens.token(soon())).to.equal('hvs.fake-token-1');
      tokens.invalidate('hvs.fake-token-1');
      expect(tokens.status().loggedIn).to.equal(false);
      expect(await tokens.token(soon())).to.equal('hvs.fake-token-2');
      expect(method.logins).to.equal(2);
    });

    it('ignores a token that is no longer the current one', async () => {
      const method = new FakeAuthMethod();
      const { tokens } = track(manager(method));
      await tokens.token(soon());
      tokens.invalidate('hvs.some-older-token');
      expect(await tokens.token(soon())).to.equal('hvs.fake-token-1');
      expect(method.logins).to.equal(1);
    });
  });

  describe('expiry and renewal', () => {
    it('logs in again instead of handing out a token about to expire', async () => {
      let clock = 1_000_000;
      const method = new FakeAuthMethod((n) => loginOf(`hvs.fake-token-${n}`, 10, false));
      const { tokens } = track(manager(method, { now: () => clock }));
      expect(await tokens.token(clock + 1000)).to.equal('hvs.fake-token-1');
      clock += 8_500;
      expect(await tokens.token(clock + 1000)).to.equal('hvs.fake-token-1');
      clock += 1_000; // 500 ms left
      expect(await tokens.token(clock + 1000)).to.equal('hvs.fake-token-2');
    });

    it('renews at about two thirds of the TTL, then logs in again when renewal is capped by the max TTL', async function () {
      this.timeout(5000);
      const method = new FakeAuthMethod((n) => loginOf(`hvs.fake-token-${n}`, 2, true));
      const { tokens, vault } = track(
        manager(method, {
          // Asked for 2 s, granted 1 s: the max TTL is near.
          handler: (call) =>
            call.path === 'auth/token/renew-self' ? { auth: { lease_duration: 1, renewable: true } } : {},
        }),
      );
      const started = Date.now();
      expect(await tokens.token(soon())).to.equal('hvs.fake-token-1');

      await sleep(1150);
      expect(vault.calls, 'no renewal before ~2/3 of the TTL').to.have.length(0);
      await sleep(350); // ~1.5 s: renewed at ~1.33 s
      const renewals = vault.callsTo('auth/token/renew-self');
      expect(renewals).to.have.length(1);
      expect(renewals[0]).to.deep.include({ method: 'POST', token: 'hvs.fake-token-1', body: { increment: '2s' } });
      expect(tokens.status().renewals).to.equal(1);
      expect(method.logins).to.equal(1);

      await sleep(2150 - (Date.now() - started)); // ~2.15 s: the capped token was replaced at ~2 s
      expect(method.logins).to.equal(2);
      expect(vault.callsTo('auth/token/renew-self')).to.have.length(1);
      expect(await tokens.token(soon())).to.equal('hvs.fake-token-2');
    });

    it('logs in again when renewal is refused', async function () {
      this.timeout(3000);
      const method = new FakeAuthMethod((n) => loginOf(`hvs.fake-token-${n}`, 1, true));
      const { tokens, vault, records } = track(
        manager(method, {
          handler: () => Promise.reject(new VaultApiError(403, ['permission denied'], 'auth/token/renew-self')),
        }),
      );
      await tokens.token(soon());
      await sleep(800); // renewal at ~0.67 s
      expect(vault.callsTo('auth/token/renew-self')).to.have.length(1);
      expect(method.logins).to.equal(2);
      expect(await tokens.token(soon())).to.equal('hvs.fake-token-2');
      expect(records().some((r) => r.message === 'Vault token renewal failed; logging in again')).to.equal(true);
    });

    it('does not renew a token that never expires', async () => {
      const method = new FakeAuthMethod((n) => loginOf(`hvs.fake-token-${n}`, 0, true));
      const { tokens } = track(manager(method));
      await tokens.token(soon());
      expect(tokens.status()).to.include({ loggedIn: true, ttlSeconds: 0, expiresAt: undefined });
    });

    it('does not hammer Vault with renewals for a token whose TTL exceeds the timer range', async () => {
      const ttl = 365 * 24 * 3600;
      const method = new FakeAuthMethod((n) => loginOf(`hvs.fake-token-${n}`, ttl, true));
      const { tokens, vault } = track(
        manager(method, { handler: () => ({ auth: { lease_duration: ttl, renewable: true } }) }),
      );
      await tokens.token(soon());
      await sleep(100);
      expect(vault.callsTo('auth/token/renew-self')).to.have.length(0);
    });

    it('stop() clears the renewal timer', async () => {
      const method = new FakeAuthMethod((n) => loginOf(`hvs.fake-token-${n}`, 1, true));
      const { tokens, vault } = track(manager(method, { random: () => 0 }));
      await tokens.token(soon());
      tokens.stop();
      await sleep(750); // renewal would have been at ~0.6 s
      expect(vault.calls).to.have.length(0);
      expect(method.logins).to.equal(1);
    });
  });

  describe('status', () => {
    it('describes the token without ever containing it', async () => {
      const method = new FakeAuthMethod(() => loginOf(TOKEN, 3600, true, ['dso-reader']));
      const { tokens, lines } = track(manager(method));
      expect(tokens.status()).to.include({ loggedIn: false, method: 'approle', mount: 'auth/approle', logins: 0 });
      await tokens.token(soon());
      const status = tokens.status();
      expect(status).to.include({
        loggedIn: true,
        method: 'approle',
        mount: 'auth/approle',
        renewable: true,
        logins: 1,
        renewals: 0,
      });
      expect(status.policies).to.deep.equal(['dso-reader']);
      expect(status.ttlSeconds).to.be.within(3599, 3600);
      expect(status.expiresAt).to.be.a('string');
      expect(JSON.stringify(status)).to.not.include(TOKEN);
      expect(lines.join('\n')).to.not.include(TOKEN);
    });

    it('login() returns the fresh state (used by the Vault test) and counts the login', async () => {
      const method = new FakeAuthMethod(() => loginOf(TOKEN, 60, false, ['p1']));
      const { tokens } = track(manager(method));
      const state = await tokens.login();
      expect(state).to.include({ token: TOKEN, ttlSeconds: 60, renewable: false });
      expect(state.policies).to.deep.equal(['p1']);
      expect(tokens.status().logins).to.equal(1);
    });
  });

  describe('old tokens end', () => {
    const revokedTokens = (vault: { callsTo(p: string): Array<{ token?: string }> }) =>
      vault.callsTo('auth/token/revoke-self').map((c) => c.token);

    it('revokes the previous token one request deadline after a new login when it owns no lease', async function () {
      this.timeout(5000);
      const method = new FakeAuthMethod((n) => loginOf(`hvs.fake-token-${n}`, 3600, true));
      const { tokens, vault, records } = track(manager(method, { timeoutMs: 100 }));
      await tokens.login();
      await tokens.login();
      await sleep(500);
      expect(revokedTokens(vault), 'requests that took it may still be running').to.deep.equal([]);
      await sleep(800); // 100 ms deadline + 1 s
      expect(revokedTokens(vault)).to.deep.equal(['hvs.fake-token-1']);
      expect(tokens.status().retiredTokensRevoked).to.equal(1);
      expect(records().some((r) => r.message === 'earlier Vault token revoked: it owns no lease any more')).to.equal(
        true,
      );
      expect(JSON.stringify(records())).to.not.include('hvs.fake-token');
    });

    it('keeps a previous token that owns leases, and revokes it once its last lease is released', async function () {
      this.timeout(5000);
      const method = new FakeAuthMethod((n) => loginOf(`hvs.fake-token-${n}`, 3600, true));
      const { tokens, vault } = track(manager(method, { timeoutMs: 100 }));
      await tokens.login();
      tokens.leaseTokens.hold('hvs.fake-token-1');
      tokens.leaseTokens.hold('hvs.fake-token-1');
      await tokens.login();
      await sleep(1300);
      expect(revokedTokens(vault)).to.deep.equal([]);
      expect(tokens.status().retiredTokensKeptForLeases).to.equal(1);
      tokens.leaseTokens.release('hvs.fake-token-1');
      tokens.leaseTokens.release('hvs.fake-token-1');
      await sleep(1300);
      expect(revokedTokens(vault)).to.deep.equal(['hvs.fake-token-1']);
      expect(tokens.status().retiredTokensKeptForLeases).to.equal(0);
    });

    it('keeps a previous token that gained a lease during the grace period', async function () {
      this.timeout(5000);
      const method = new FakeAuthMethod((n) => loginOf(`hvs.fake-token-${n}`, 3600, true));
      const { tokens, vault } = track(manager(method, { timeoutMs: 100 }));
      await tokens.login();
      await tokens.login();
      tokens.leaseTokens.hold('hvs.fake-token-1'); // a request that took it just before the login made a lease
      await sleep(1300);
      expect(revokedTokens(vault)).to.deep.equal([]);
      expect(tokens.status().retiredTokensKeptForLeases).to.equal(1);
    });

    it("never revokes the token method's token (it is the operator's), nor a token the login handed out again", async function () {
      this.timeout(5000);
      const operator = new FakeAuthMethod((n) => loginOf(`hvs.fake-token-${n}`, 3600, true));
      (operator as { name: string }).name = 'token';
      const same = new FakeAuthMethod(() => loginOf('hvs.fake-token-same', 3600, true));
      const a = track(manager(operator, { timeoutMs: 100 }));
      const b = track(manager(same, { timeoutMs: 100 }));
      await a.tokens.login();
      await a.tokens.login();
      await b.tokens.login();
      await b.tokens.login();
      await sleep(1300);
      expect(revokedTokens(a.vault)).to.deep.equal([]);
      expect(revokedTokens(b.vault)).to.deep.equal([]);
    });
  });
});
