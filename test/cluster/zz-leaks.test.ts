// Runs after the other cluster suites, while the bed still exists: the three nodes'
// dockerd logs hold every line the plugins printed (theirs is the only stdout dockerd
// keeps). None may contain a secret value, token or database password the suites used.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { leakForms, registeredSecrets } from '../support/capture';
import { LOG_DIR, NODES } from './bed';

describe('cluster: leak scan over the nodes', () => {
  it("finds no registered secret in the nodes' dockerd logs (the plugins' output)", function () {
    const logs = NODES.map((n) => path.join(LOG_DIR, `n${n}.log`)).filter((f) => fs.existsSync(f));
    const secrets = registeredSecrets();
    if (logs.length === 0 || secrets.length === 0) this.skip();
    const texts = logs.map((f) => fs.readFileSync(f, 'utf8'));
    expect(
      texts.some((t) => t.includes('"message\\":\\"GetSecret')),
      "the logs hold the plugins' lines",
    ).to.equal(true);
    const leaks = secrets.filter((s) => texts.some((t) => leakForms(s).some((f) => t.includes(f)))).length;
    // Only the count is printed: a failure message must not leak the value either.
    expect(leaks, `${leaks} of ${secrets.length} secrets appeared in ${logs.length} node logs`).to.equal(0);
  });
});
