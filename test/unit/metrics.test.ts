// GetSecret metrics are noted per request and reach prom-client in batches: every
// observation must still be counted, whether a scrape or a full batch takes it in.
import { expect } from 'chai';
import { Metrics } from '../../src/status/metrics';

function sample(text: string, name: string, labels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

describe('Metrics', () => {
  it('counts every GetSecret across full batches and the rest a scrape takes in', async () => {
    const metrics = new Metrics();
    for (let i = 0; i < 600; i++) metrics.observeGetSecret('ok', undefined, 0.002);
    for (let i = 0; i < 7; i++) metrics.observeGetSecret('error', 'ERR_NOT_FOUND', 0.02);
    const text = await metrics.text();
    expect(sample(text, 'dso_getsecret_requests_total', 'outcome="ok",code=""')).to.equal(600);
    expect(sample(text, 'dso_getsecret_requests_total', 'outcome="error",code="ERR_NOT_FOUND"')).to.equal(7);
    expect(sample(text, 'dso_getsecret_duration_seconds_count', 'outcome="ok"')).to.equal(600);
    expect(sample(text, 'dso_getsecret_duration_seconds_bucket', 'le="0.0025",outcome="ok"')).to.equal(600);
    expect(sample(text, 'dso_getsecret_duration_seconds_bucket', 'le="0.01",outcome="error"')).to.equal(0);
    expect(sample(text, 'dso_getsecret_duration_seconds_bucket', 'le="0.025",outcome="error"')).to.equal(7);
    expect(sample(text, 'dso_getsecret_duration_seconds_sum', 'outcome="error"')).to.be.closeTo(0.14, 1e-9);
  });

  it('counts outcomes and codes that alternate within a batch each under its own labels', async () => {
    const metrics = new Metrics();
    const codes = [undefined, 'ERR_NOT_FOUND', 'ERR_NOT_FOUND', 'ERR_TIMEOUT'];
    for (let i = 0; i < 1000; i++) {
      const code = codes[i % codes.length];
      metrics.observeGetSecret(code ? 'error' : 'ok', code, 0.001);
    }
    const text = await metrics.text();
    expect(sample(text, 'dso_getsecret_requests_total', 'outcome="ok",code=""')).to.equal(250);
    expect(sample(text, 'dso_getsecret_requests_total', 'outcome="error",code="ERR_NOT_FOUND"')).to.equal(500);
    expect(sample(text, 'dso_getsecret_requests_total', 'outcome="error",code="ERR_TIMEOUT"')).to.equal(250);
    expect(sample(text, 'dso_getsecret_duration_seconds_count', 'outcome="error"')).to.equal(750);
  });

  it('counts what arrived between two scrapes once', async () => {
    const metrics = new Metrics();
    metrics.observeGetSecret('ok', undefined, 0.001);
    await metrics.text();
    metrics.observeGetSecret('ok', undefined, 0.001);
    const text = await metrics.text();
    expect(sample(text, 'dso_getsecret_requests_total', 'outcome="ok",code=""')).to.equal(2);
    expect(sample(text, 'dso_getsecret_duration_seconds_count', 'outcome="ok"')).to.equal(2);
  });
});
