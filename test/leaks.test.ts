// Runs last: every secret value, token and secret id the suite registered is looked for in
// everything the plugin said (log lines, replies, process output, the dockerd log when
// this suite's engine writes one) and everything the test run itself printed (mocha is
// started with --require test/support/output-capture). Finding one fails the suite
// without printing it.
import { expect } from 'chai';
import * as fs from 'node:fs';
import { capturedText, leakForms, registeredSecrets } from './support/capture';

const DOCKERD_LOG = '/var/log/dso-dockerd.log';

function findLeaks(texts: string[], secrets: string[]): number {
  let leaks = 0;
  for (const value of secrets) {
    const forms = leakForms(value);
    if (texts.some((t) => forms.some((f) => t.includes(f)))) leaks++;
  }
  return leaks;
}

describe('leak scan over the whole suite', () => {
  it('finds a planted secret, so the scan itself works', () => {
    expect(findLeaks(['x {"Err":"a-planted-canary-123"} y'], ['a-planted-canary-123'])).to.equal(1);
    expect(findLeaks([Buffer.from('base64-planted-canary').toString('base64')], ['base64-planted-canary'])).to.equal(1);
    // As dockerd logs a plugin's JSON line: quoted again inside msg="...".
    const quoted = 'a "quoted" \\ planted-canary';
    expect(
      findLeaks([`level=info msg=${JSON.stringify(JSON.stringify({ msg: quoted }))} plugin=abc`], [quoted]),
    ).to.equal(1);
  });

  it('finds no registered secret in anything the plugin logged or answered, or the tests printed', function () {
    const secrets = registeredSecrets();
    const texts = capturedText();
    if (secrets.length === 0 || texts.length === 0) this.skip();
    const leaks = findLeaks(texts, secrets);
    // Only the count is printed: a failure message must not leak the value either.
    expect(leaks, `${leaks} of ${secrets.length} secrets appeared in ${texts.length} captured outputs`).to.equal(0);
  });

  it('finds no registered secret in the dockerd log (plugin stdout) of the end-to-end run', function () {
    if (!fs.existsSync(DOCKERD_LOG)) this.skip();
    const leaks = findLeaks([fs.readFileSync(DOCKERD_LOG, 'utf8')], registeredSecrets());
    expect(leaks, `${leaks} secrets appeared in ${DOCKERD_LOG}`).to.equal(0);
  });
});
