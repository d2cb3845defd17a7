// The README's policies are the ones the tests use.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { README_POLICIES } from '../support/policies';

describe('README policies', () => {
  const readme = fs.readFileSync(path.join(__dirname, '..', '..', '..', 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```hcl\n([\s\S]*?)```/g)].map((m) => m[1].trim());

  it('shows the static-read policy the tests use, verbatim', () => {
    expect(blocks).to.include(README_POLICIES.static);
  });

  it('shows the dynamic-secrets policy the tests use, verbatim', () => {
    expect(blocks).to.include(README_POLICIES.dynamic);
  });
});
