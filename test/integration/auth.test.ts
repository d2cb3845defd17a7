// Token and AppRole login against a real OpenBao, including the token's whole life:
// renewal, max TTL, re-login, and a token revoked behind the plugin's back.
import { expect } from 'chai';
import supertest from 'supertest';
import { secret } from '../support/capture';
import { OpenBao, sharedOpenBao } from '../support/openbao';
import { credentialFile, startTestPlugin, TestPlugin } from '../support/plugin';
import { staticReadPolicy } from '../support/policies';

const VALUE = secret('auth-canary-value-1c9e77');

interface TokenStatus {
  logins: number;
  renewals: number;
  loggedIn: boolean;
}

function tokenStatus(plugin: TestPlugin): TokenStatus {
  return (plugin.plugin.describe().vault as { token: TokenStatus }).token;
}

describe('Vault login with a real OpenBao', function () {
  this.timeout(60_000);
  let bao: OpenBao;
  const request = {
    SecretName: 'app_key',
    ServiceName: 'api',
    SecretLabels: { 'dso.ref': 'dso://secret/data/auth-test/app#key' },
  };
  const running: TestPlugin[] = [];
  const start = (env: Record<string, string>) => {
    const plugin = startTestPlugin({ VAULT_ADDR: bao.addr, DSO_TIMEOUT: '5s', ...env });
    running.push(plugin);
    return plugin;
  };

  before(async () => {
    bao = await sharedOpenBao();
    await bao.api('POST', 'secret/data/auth-test/app', { data: { key: VALUE } });
    await bao.api('PUT', 'sys/policies/acl/dso-auth-test', { policy: staticReadPolicy('secret/data/auth-test/*') });
    await bao.api('POST', 'sys/auth/approle', { type: 'approle' }).catch(() => undefined);
    await bao.api('POST', 'auth/approle/role/dso', {
      token_policies: ['dso-auth-test'],
      token_ttl: '1h',
      secret_id_ttl: '1h',
    });
    await bao.api('POST', 'auth/approle/role/dso-short', {
      token_policies: ['dso-auth-test'],
      token_ttl: '2s',
      token_max_ttl: '4s',
    });
    await bao.api('POST', 'sys/auth/approle-alt', { type: 'approle' }).catch(() => undefined);
    await bao.api('POST', 'auth/approle-alt/role/other', { token_policies: ['dso-auth-test'], token_ttl: '1h' });
  });

  after(() => running.forEach((p) => p.stop()));

  async function roleCredentials(mount: string, role: string): Promise<{ roleId: string; secretId: string }> {
    const roleId = (await bao.api<{ data: { role_id: string } }>('GET', `auth/${mount}/role/${role}/role-id`)).data
      .role_id;
    const secretId = (await bao.api<{ data: { secret_id: string } }>('POST', `auth/${mount}/role/${role}/secret-id`))
      .data.secret_id;
    return { roleId, secretId: secret(secretId) };
  }

  /**
   * A plugin that logs in with the AppRole `role` on auth/approle, its secret id in the
   * credential file `file`: a new one of the role's, or `secretId` when given.
   */
  async function startAppRole(role: string, file: string, secretId?: string): Promise<TestPlugin> {
    const issued = await roleCredentials('approle', role);
    return start({
      VAULT_AUTH_METHOD: 'approle',
      VAULT_ROLE_ID: issued.roleId,
      VAULT_SECRET_ID_FILE: credentialFile(file, secretId ?? issued.secretId),
    });
  }

  it('logs in with a token read from VAULT_TOKEN_FILE', async () => {
    const token = await bao.api<{ auth: { client_token: string } }>('POST', 'auth/token/create', {
      policies: ['dso-auth-test'],
      ttl: '1h',
    });
    const plugin = start({
      VAULT_AUTH_METHOD: 'token',
      VAULT_TOKEN_FILE: credentialFile('auth-token', secret(token.auth.client_token)),
    });
    const { value } = await plugin.get(request);
    expect(value!.toString()).to.equal(VALUE);
  });

  it('says which file and what to do when the token is invalid', async () => {
    const plugin = start({
      VAULT_AUTH_METHOD: 'token',
      VAULT_TOKEN_FILE: credentialFile('bad-token', secret('s.not-a-valid-token-xyz')),
    });
    const { status, reply } = await plugin.get(request);
    expect(status).to.equal(500);
    expect(reply.Err)
      .to.match(/token login at auth\/token failed: permission denied/)
      .and.match(/bad-token/);
  });

  it('says which setting is missing when the token file does not exist', async () => {
    const plugin = start({ VAULT_AUTH_METHOD: 'token', VAULT_TOKEN_FILE: '/nonexistent/dso/token' });
    const { reply } = await plugin.get(request);
    expect(reply.Err).to.match(/VAULT_TOKEN_FILE: \/nonexistent\/dso\/token does not exist/);
  });

  it('logs in with AppRole', async () => {
    const plugin = await startAppRole('dso', 'secret-id');
    expect((await plugin.get(request)).value!.toString()).to.equal(VALUE);
  });

  it('logs in with AppRole on another mount, role id from a file', async () => {
    const { roleId, secretId } = await roleCredentials('approle-alt', 'other');
    const plugin = start({
      VAULT_AUTH_METHOD: 'approle',
      VAULT_AUTH_MOUNT: 'approle-alt',
      VAULT_ROLE_ID_FILE: credentialFile('alt-role-id', roleId),
      VAULT_SECRET_ID_FILE: credentialFile('alt-secret-id', secretId),
    });
    expect((await plugin.get(request)).value!.toString()).to.equal(VALUE);
  });

  it("explains a wrong secret id with Vault's reason and a hint", async () => {
    const plugin = await startAppRole('dso', 'wrong-secret-id', secret('00000000-1111-2222-3333-444444444444'));
    const { reply } = await plugin.get(request);
    expect(reply.Err)
      .to.match(/approle login at auth\/approle failed: invalid (role or )?secret id/i)
      .and.match(/Hint: check VAULT_ROLE_ID/);
  });

  it('unwraps a response-wrapped secret id once and keeps serving across re-logins', async () => {
    const roleId = (await bao.api<{ data: { role_id: string } }>('GET', 'auth/approle/role/dso-short/role-id')).data
      .role_id;
    const wrapped = await fetch(`${bao.addr}/v1/auth/approle/role/dso-short/secret-id`, {
      method: 'POST',
      headers: { 'X-Vault-Token': bao.rootToken, 'X-Vault-Wrap-TTL': '60s' },
    }).then((r) => r.json() as Promise<{ wrap_info: { token: string } }>);
    const plugin = start({
      VAULT_AUTH_METHOD: 'approle',
      VAULT_ROLE_ID: roleId,
      VAULT_SECRET_ID_FILE: credentialFile('wrapped-secret-id', secret(wrapped.wrap_info.token)),
      VAULT_SECRET_ID_WRAPPED: 'true',
    });
    expect((await plugin.get(request)).value!.toString()).to.equal(VALUE);
    // token_ttl 2s, max 4s: over 7 s the plugin must log in several times, unwrapping only once.
    const end = Date.now() + 7_000;
    let served = 0;
    while (Date.now() < end) {
      const { value, reply } = await plugin.get(request);
      expect(reply.Err, 'every request is served').to.equal('');
      expect(value!.toString()).to.equal(VALUE);
      served++;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(served).to.be.greaterThan(20);
    expect(tokenStatus(plugin).logins).to.be.at.least(2);
  });

  it('renews a short-lived token and logs in again when max TTL comes', async () => {
    const plugin = await startAppRole('dso-short', 'short-secret-id');
    expect((await plugin.get(request)).reply.Err).to.equal('');
    const end = Date.now() + 9_000;
    while (Date.now() < end) {
      const { reply } = await plugin.get(request);
      expect(reply.Err, 'every request is served').to.equal('');
      await new Promise((r) => setTimeout(r, 300));
    }
    const status = tokenStatus(plugin);
    expect(status.renewals, 'renewed before expiry').to.be.at.least(1);
    expect(status.logins, 'logged in again at max TTL').to.be.at.least(3);
  });

  it('logs in again when its token is revoked behind its back', async () => {
    const plugin = await startAppRole('dso', 'revoke-secret-id');
    expect((await plugin.get(request)).reply.Err).to.equal('');
    // Revoke every token the role issued, as an operator would.
    const accessors = await bao.api<{ data: { keys: string[] } }>('LIST', 'auth/token/accessors');
    for (const accessor of accessors.data.keys) {
      const info = await bao.api<{ data: { meta?: Record<string, string> | null; path: string } }>(
        'POST',
        'auth/token/lookup-accessor',
        { accessor },
      );
      if (info.data.path.startsWith('auth/approle/login'))
        await bao.api('POST', 'auth/token/revoke-accessor', { accessor });
    }
    const { value, reply } = await plugin.get(request);
    expect(reply.Err).to.equal('');
    expect(value!.toString()).to.equal(VALUE);
    expect(tokenStatus(plugin).logins).to.equal(2);
  });

  it('reports login and a test read on POST /DSO.TestVault, and which stage failed', async () => {
    const good = await startAppRole('dso', 'test-vault-secret-id');
    const ok = await supertest(good.app)
      .post('/DSO.TestVault')
      .send(Buffer.from(JSON.stringify({ Reference: 'dso://secret/auth-test/app#key' })));
    expect(ok.body).to.deep.include({ ok: true });
    expect(ok.body.read).to.deep.equal({
      path: 'secret/data/auth-test/app',
      field: 'key',
      version: 1,
      bytes: VALUE.length,
    });
    expect(ok.text).not.to.contain(VALUE);
    const denied = await supertest(good.app)
      .post('/DSO.TestVault')
      .send(Buffer.from(JSON.stringify({ Reference: 'dso://secret/forbidden/x#k' })));
    expect(denied.body).to.include({ ok: false, stage: 'read', code: 'ERR_VAULT_DENIED' });
    const bad = await startAppRole('dso', 'test-vault-bad-id', secret('99999999-1111-2222-3333-444444444444'));
    const failed = await supertest(bad.app).post('/DSO.TestVault').send(Buffer.from('{}'));
    expect(failed.body).to.include({ ok: false, stage: 'login', code: 'ERR_LOGIN' });
    expect(failed.body.error).to.match(/invalid role or secret id/i);
  });

  it('answers a policy denial with a clear error and no login storm', async () => {
    const plugin = await startAppRole('dso', 'deny-secret-id');
    await bao.api('POST', 'secret/data/forbidden/x', { data: { k: 'v' } });
    const denied = { ...request, SecretLabels: { 'dso.ref': 'dso://secret/data/forbidden/x#k' } };
    for (let i = 0; i < 5; i++) {
      const { reply } = await plugin.get(denied);
      expect(reply.Err).to.match(/permission denied/);
    }
    expect(tokenStatus(plugin).logins).to.equal(1);
  });
});
