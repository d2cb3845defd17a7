// Prometheus metrics on DSO_METRICS_ADDR, scraped from the real plugin process.
import { expect } from 'chai';
import { capture, secret } from '../support/capture';
import { freePort, OpenBao, sharedOpenBao } from '../support/openbao';
import { staticReadPolicy } from '../support/policies';
import { tokenLoginSettings } from '../support/plugin';
import { PluginProcess, socketRequest, startPluginProcess } from '../support/process';

function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

describe('Prometheus metrics', function () {
  this.timeout(30_000);
  let bao: OpenBao;
  let p: PluginProcess;
  let address: string;
  const get = (ref: string) =>
    socketRequest(
      p.socket,
      'POST',
      '/SecretProvider.GetSecret',
      JSON.stringify({ SecretName: 's', ServiceName: 'm', SecretLabels: { 'dso.ref': ref } }),
    );
  const scrape = async () => {
    const res = await fetch(`http://${address}/metrics`);
    expect(res.status).to.equal(200);
    const text = await res.text();
    capture(text); // the scrape is scanned for leaks like every other output
    return text;
  };

  before(async () => {
    bao = await sharedOpenBao();
    await bao.api('POST', 'secret/data/metrics/app', { data: { key: secret('metrics-canary-value-2b7c') } });
    address = `127.0.0.1:${await freePort()}`;
    p = await startPluginProcess({
      ...(await tokenLoginSettings(bao, 'dso-metrics', staticReadPolicy('secret/data/metrics/*'))),
      DSO_METRICS_ADDR: address,
    });
  });
  after(() => p?.stop());

  it('counts GetSecret by outcome, times them, and counts Vault requests and logins', async () => {
    for (let i = 0; i < 3; i++) expect((await get('dso://secret/data/metrics/app#key')).status).to.equal(200);
    expect((await get('dso://secret/data/metrics/app#nope')).status).to.equal(500);
    const text = await scrape();
    expect(sample(text, 'dso_getsecret_requests_total', 'outcome="ok",code=""')).to.equal(3);
    expect(sample(text, 'dso_getsecret_requests_total', 'outcome="error",code="ERR_FIELD_MISSING"')).to.equal(1);
    expect(sample(text, 'dso_getsecret_duration_seconds_count', 'outcome="ok"')).to.equal(3);
    expect(sample(text, 'dso_vault_requests_total', 'result="ok"')).to.be.at.least(4);
    expect(sample(text, 'dso_vault_logins_total')).to.equal(1);
    // The policy token was made with a 1 h TTL: the gauge shows what is left of it.
    expect(sample(text, 'dso_vault_token_ttl_seconds')).to.be.within(3000, 3600);
    expect(sample(text, 'dso_leases_held')).to.equal(0);
    expect(text).to.contain('dso_vault_merged_reads_total');
    expect(text).not.to.contain('metrics-canary-value');
  });

  it('answers 404 on any other route', async () => {
    expect((await fetch(`http://${address}/`)).status).to.equal(404);
  });
});
