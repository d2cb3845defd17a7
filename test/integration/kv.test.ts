// KV v1 and v2 served from a real OpenBao, on mounts that are not the default `secret/`.
import { expect } from 'chai';
import { secret } from '../support/capture';
import { OpenBao, policyToken, sharedOpenBao } from '../support/openbao';
import { credentialFile, startTestPlugin, TestPlugin } from '../support/plugin';
import { staticReadPolicy } from '../support/policies';

const PASSWORD = secret('kv-canary-Pa55w0rd-7f3c91');
const API_KEY = secret('kv-canary-apikey-91bd02');
const OLD_PASSWORD = secret('kv-canary-old-pass-55aa10');
const BINARY = Buffer.from([0, 1, 2, 254, 255, 10, 13]);

describe('KV secrets from a real OpenBao', function () {
  let bao: OpenBao;
  let plugin: TestPlugin;

  before(async function () {
    bao = await sharedOpenBao();
    await bao.api('POST', 'sys/mounts/apps-v2', { type: 'kv', options: { version: '2' } }).catch(() => undefined);
    await bao
      .api('POST', 'sys/mounts/team/legacy-v1', { type: 'kv', options: { version: '1' } })
      .catch(() => undefined);
    await bao.api('POST', 'apps-v2/data/web/db', { data: { password: OLD_PASSWORD, user: 'web' } });
    await bao.api('POST', 'apps-v2/data/web/db', {
      data: { password: PASSWORD, user: 'web', port: 5432, nested: { a: 1 } },
    });
    await bao.api('POST', 'apps-v2/data/web/env', { data: { API_KEY, MODE: 'prod' } });
    await bao.api('POST', 'apps-v2/data/web/blob', { data: { file: BINARY.toString('base64') } });
    await bao.api('POST', 'apps-v2/data/web/empty', { data: { blank: '' } });
    await bao.api('POST', 'apps-v2/data/web/huge', { data: { big: 'x'.repeat(512_000) } });
    await bao.api('POST', 'team/legacy-v1/billing', { api_key: API_KEY, region: 'eu' });
    const token = await policyToken(
      bao,
      'dso-kv-reader',
      [staticReadPolicy('apps-v2/data/*'), staticReadPolicy('team/legacy-v1/*')].join('\n'),
      '1h',
    );
    plugin = startTestPlugin({
      VAULT_ADDR: bao.addr,
      VAULT_AUTH_METHOD: 'token',
      VAULT_TOKEN_FILE: credentialFile('kv-token', token),
      DSO_TIMEOUT: '5s',
      DSO_ALLOWED_PATHS: 'apps-v2/data/*,team/legacy-v1/*',
    });
  });

  after(() => plugin?.stop());

  const labels = (l: Record<string, string>) => ({
    SecretName: 'db_password',
    ServiceName: 'web',
    TaskName: 'web.1.abc',
    SecretLabels: l,
  });

  it('reads a field from KV v2 by API path', async () => {
    const { status, value, reply } = await plugin.get(labels({ 'dso.ref': 'dso://apps-v2/data/web/db#password' }));
    expect(status).to.equal(200);
    expect(value!.equals(Buffer.from(PASSWORD))).to.equal(true);
    expect(reply.DoNotReuse).to.equal(false);
  });

  it('accepts the CLI form of a KV v2 path and adds data/', async () => {
    const { value } = await plugin.get(labels({ 'dso.ref': 'dso://apps-v2/web/db#password' }));
    expect(value!.equals(Buffer.from(PASSWORD))).to.equal(true);
  });

  it('reads an older KV v2 version with dso.version', async () => {
    const { value } = await plugin.get(labels({ 'dso.ref': 'dso://apps-v2/web/db#password', 'dso.version': '1' }));
    expect(value!.equals(Buffer.from(OLD_PASSWORD))).to.equal(true);
  });

  it('reports a version that does not exist', async () => {
    const { status, reply } = await plugin.get(
      labels({ 'dso.ref': 'dso://apps-v2/web/db#password', 'dso.version': '99' }),
    );
    expect(status).to.equal(500);
    expect(reply.Err).to.match(/version 99/);
  });

  it('reads KV v1 on a nested mount, told apart by asking Vault', async () => {
    const { value } = await plugin.get(labels({ 'dso.path': 'team/legacy-v1/billing', 'dso.field': 'region' }));
    expect(value!.toString()).to.equal('eu');
  });

  it('refuses dso.version on a KV v1 mount', async () => {
    const { reply } = await plugin.get(
      labels({ 'dso.ref': 'dso://team/legacy-v1/billing#region', 'dso.version': '2' }),
    );
    expect(reply.Err).to.match(/KV v2/);
  });

  it('renders the whole object as JSON without a field', async () => {
    const { value } = await plugin.get(labels({ 'dso.ref': 'dso://apps-v2/web/db' }));
    expect(JSON.parse(value!.toString())).to.deep.equal({
      password: PASSWORD,
      user: 'web',
      port: 5432,
      nested: { a: 1 },
    });
  });

  it('renders env lines sorted by key', async () => {
    const { value } = await plugin.get(labels({ 'dso.ref': 'dso://apps-v2/web/env', 'dso.format': 'env' }));
    expect(value!.toString()).to.equal(`API_KEY=${API_KEY}\nMODE=prod\n`);
  });

  it('renders a number field as raw text and an object field as JSON', async () => {
    expect((await plugin.get(labels({ 'dso.ref': 'dso://apps-v2/web/db#port' }))).value!.toString()).to.equal('5432');
    expect((await plugin.get(labels({ 'dso.ref': 'dso://apps-v2/web/db#nested' }))).value!.toString()).to.equal(
      '{"a":1}',
    );
    expect(
      (await plugin.get(labels({ 'dso.ref': 'dso://apps-v2/web/db#nested', 'dso.format': 'json' }))).value!.toString(),
    ).to.equal('{"a":1}');
  });

  it('decodes a base64 field to its exact bytes', async () => {
    const { value } = await plugin.get(labels({ 'dso.ref': 'dso://apps-v2/web/blob#file', 'dso.format': 'base64' }));
    expect(value!.equals(BINARY)).to.equal(true);
  });

  it('names the fields that exist, never their values, when the field is missing', async () => {
    const { status, reply } = await plugin.get(labels({ 'dso.ref': 'dso://apps-v2/web/db#passwd' }));
    expect(status).to.equal(500);
    expect(reply.Err).to.contain('"password"').and.to.contain('"user"').and.to.contain('passwd');
    expect(reply.Err).not.to.contain(PASSWORD);
  });

  it('refuses an empty value', async () => {
    const { reply } = await plugin.get(labels({ 'dso.ref': 'dso://apps-v2/web/empty#blank' }));
    expect(reply.Err).to.match(/empty/);
  });

  it('refuses a value larger than Docker accepts', async () => {
    const { reply } = await plugin.get(labels({ 'dso.ref': 'dso://apps-v2/web/huge#big' }));
    expect(reply.Err).to.match(/511999/);
  });

  it('reports a secret that does not exist', async () => {
    const { reply } = await plugin.get(labels({ 'dso.ref': 'dso://apps-v2/web/nothing#x' }));
    expect(reply.Err).to.match(/no secret at apps-v2\/data\/web\/nothing/);
  });

  it('refuses a path outside DSO_ALLOWED_PATHS without asking Vault', async () => {
    const { status, reply } = await plugin.get(labels({ 'dso.ref': 'dso://secret/data/other/db#password' }));
    expect(status).to.equal(500);
    expect(reply.Err).to.match(/not allowed by DSO_ALLOWED_PATHS/);
    expect(bao.auditedPaths().filter((p) => p.includes('other/db'))).to.deep.equal([]);
  });

  it('fills path templates from the request', async () => {
    const { value } = await plugin.get({
      SecretName: 'db',
      ServiceName: 'web',
      SecretLabels: { 'dso.ref': 'dso://apps-v2/{service}/{secret}#user' },
    });
    expect(value!.toString()).to.equal('web');
  });

  it('sets DoNotReuse from dso.reuse', async () => {
    const { reply } = await plugin.get(labels({ 'dso.ref': 'dso://apps-v2/web/db#user', 'dso.reuse': 'false' }));
    expect(reply.DoNotReuse).to.equal(true);
  });

  it('merges identical concurrent reads into one Vault request', async () => {
    const before = (plugin.plugin.describe().vault as { mergedReads: number }).mergedReads;
    const replies = await Promise.all(
      Array.from({ length: 20 }, () => plugin.get(labels({ 'dso.ref': 'dso://apps-v2/web/db#user' }))),
    );
    expect(replies.every((r) => r.value?.toString() === 'web')).to.equal(true);
    expect((plugin.plugin.describe().vault as { mergedReads: number }).mergedReads).to.be.greaterThan(before);
  });

  it('writes one log line per GetSecret with who asked and what was read', () => {
    const lines = plugin.logs.map((l) => JSON.parse(l)).filter((l) => l.message === 'GetSecret');
    const ok = lines.find((l) => l.outcome === 'ok' && l.path === 'apps-v2/data/web/db' && l.field === 'password');
    expect(ok).to.include({ service: 'web', task: 'web.1.abc', secret: 'db_password' });
    expect(ok.durationMs).to.be.a('number');
    const refused = lines.find((l) => l.code === 'ERR_PATH_REFUSED');
    expect(refused).to.include({ outcome: 'error', path: 'secret/data/other/db' });
  });
});
