// `node dist/main.js` as Docker runs it: listens at once, whatever state Vault and the
// settings are in; answers what it cannot serve with an Err that says why; never dies
// of a request; exits cleanly on SIGTERM.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { secret } from '../support/capture';
import { OpenBao, sharedOpenBao } from '../support/openbao';
import { staticReadPolicy } from '../support/policies';
import { tokenLoginSettings } from '../support/plugin';
import { PluginProcess, socketRequest, startPluginProcess } from '../support/process';

const VALUE = secret('process-canary-value-40d1be');

function getSecret(p: PluginProcess, body: unknown, headers: Record<string, string> = {}) {
  return socketRequest(
    p.socket,
    'POST',
    '/SecretProvider.GetSecret',
    typeof body === 'string' ? body : JSON.stringify(body),
    headers,
  );
}

describe('the plugin process', function () {
  this.timeout(30_000);
  let bao: OpenBao;
  const request = {
    SecretName: 'db',
    ServiceName: 'web',
    SecretLabels: { 'dso.ref': 'dso://secret/data/process/app#password' },
  };

  before(async () => {
    bao = await sharedOpenBao();
    await bao.api('POST', 'secret/data/process/app', { data: { password: VALUE } });
  });

  describe('with Vault unreachable', () => {
    let p: PluginProcess;
    before(async () => {
      p = await startPluginProcess({
        VAULT_ADDR: 'http://127.0.0.1:9',
        VAULT_AUTH_METHOD: 'token',
        VAULT_TOKEN_FILE: '/nonexistent/token',
        DSO_TIMEOUT: '2s',
      });
    });
    after(() => p.stop());

    it('listens without waiting for Vault', () => {
      expect(p.startupMs).to.be.below(5_000);
      expect(p.child.exitCode).to.equal(null);
    });

    it('answers GetSecret with an Err that says what is wrong, within the deadline', async () => {
      const started = Date.now();
      const res = await getSecret(p, request);
      expect(Date.now() - started).to.be.below(2_000);
      expect(res.status).to.equal(500);
      expect(JSON.parse(res.body).Err).to.match(/VAULT_TOKEN_FILE/);
      expect(p.child.exitCode).to.equal(null);
    });
  });

  describe('with invalid settings', () => {
    let p: PluginProcess;
    before(async () => {
      p = await startPluginProcess({ VAULT_ADDR: bao.addr, VAULT_AUTH_METHOD: 'kerberos', DSO_TIMEOUT: '45s' });
    });
    after(() => p.stop());

    it('still listens and names every bad setting in each Err', async () => {
      const res = await getSecret(p, request);
      const err: string = JSON.parse(res.body).Err;
      expect(err).to.contain('VAULT_AUTH_METHOD is invalid').and.contain('DSO_TIMEOUT is invalid');
      expect((await getSecret(p, request)).body).to.equal(res.body);
    });

    it('shows the problems on its status route', async () => {
      const res = await socketRequest(p.socket, 'GET', '/DSO.Status');
      expect(JSON.parse(res.body).problems).to.have.length.greaterThan(0);
    });
  });

  describe('serving from a real OpenBao', () => {
    let p: PluginProcess;
    before(async () => {
      p = await startPluginProcess(
        await tokenLoginSettings(bao, 'dso-process', staticReadPolicy('secret/data/process/*')),
      );
    });
    after(() => p.stop());

    it('parses a request that has no Content-Type, as Docker sends it', async () => {
      const res = await getSecret(p, request);
      expect(res.status).to.equal(200);
      expect(Buffer.from(JSON.parse(res.body).Value, 'base64').toString()).to.equal(VALUE);
    });

    it('parses a request with a text/plain Content-Type too', async () => {
      const res = await getSecret(p, request, { 'Content-Type': 'text/plain' });
      expect(res.status).to.equal(200);
    });

    it('refuses malformed JSON with 400 and an Err', async () => {
      const res = await getSecret(p, '{"SecretName": ');
      expect(res.status).to.equal(400);
      expect(JSON.parse(res.body).Err).to.match(/not valid JSON/);
    });

    it('refuses a body over 1 MiB with 413 and an Err', async () => {
      const res = await getSecret(p, JSON.stringify({ SecretName: 'x'.repeat(1_100_000) }));
      expect(res.status).to.equal(413);
      expect(JSON.parse(res.body).Err).to.match(/larger than/);
    });

    it('refuses fields of the wrong type with 400 naming them', async () => {
      const res = await getSecret(p, { SecretName: 5, SecretLabels: ['a'] });
      expect(res.status).to.equal(400);
      expect(JSON.parse(res.body).Err).to.contain('SecretName').and.contain('SecretLabels');
    });

    it('is still alive and serving after all of that', async () => {
      expect(p.child.exitCode).to.equal(null);
      expect((await getSecret(p, request)).status).to.equal(200);
    });

    it('logs one JSON line per GetSecret, without the value', async () => {
      const lines = () =>
        p
          .output()
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l));
      // The child's stdout arrives through a pipe: give its last lines a moment.
      const end = Date.now() + 3_000;
      while (lines().filter((l) => l.message === 'GetSecret').length < 5 && Date.now() < end)
        await new Promise((r) => setTimeout(r, 50));
      expect(lines().filter((l) => l.message === 'GetSecret').length).to.be.at.least(5);
      expect(lines().find((l) => l.message === 'request refused')?.error).to.match(/larger than/);
      expect(p.output()).not.to.contain(VALUE);
    });

    it('writes no file but its socket, and exits 0 on SIGTERM', async () => {
      expect(fs.readdirSync(path.dirname(p.socket))).to.deep.equal(['dso.sock']);
      expect(await p.stop()).to.equal(0);
    });
  });
});
