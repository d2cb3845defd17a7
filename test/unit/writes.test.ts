// Which references may write (resolve/writes.ts): PKI and SSH issue/sign paths by mount
// type with their certificate parameters, DSO_ALLOWED_WRITES for anything else, and a read
// whenever there is no query string. Refusals name the setting and never a value.
import { expect } from 'chai';
import type { MountInfo } from '../../src/engines/mounts';
import { parseAllowedWrites, WritePolicy } from '../../src/resolve/writes';
import { secret } from '../support/capture';
import { thrown } from './helpers';

const pki: MountInfo = { path: 'pki_int/', type: 'pki' };
const ssh: MountInfo = { path: 'ssh/', type: 'ssh' };
const db: MountInfo = { path: 'database/', type: 'database' };
const none = {};

describe('WritePolicy', () => {
  const builtIn = new WritePolicy();

  it('reads (GET) a path without a query string', () => {
    expect(builtIn.decide('database/creds/app', db, {}, none)).to.equal('read');
    expect(builtIn.decide('pki_int/cert/ca', pki, {}, none)).to.equal('read');
  });

  it('writes to every PKI issue and sign endpoint, with or without parameters', () => {
    for (const p of [
      'pki_int/issue/web',
      'pki_int/sign/web',
      'pki_int/issuer/default/issue/web',
      'pki_int/issuer/default/sign/web',
    ]) {
      expect(builtIn.decide(p, pki, {}, none), p).to.equal('write');
      expect(
        builtIn.decide(p, pki, { common_name: 'a.example.com', ttl: '1h', alt_names: 'b', format: 'pem' }, none),
        p,
      ).to.equal('write');
    }
    expect(builtIn.decide('pki_int/sign/web', pki, { csr: 'x' }, none)).to.equal('write');
    expect(
      thrown(() => builtIn.decide('pki_int/issue/web', pki, { csr: 'x' }, none)).code,
      'csr only for sign',
    ).to.equal('ERR_WRITE_REFUSED');
    expect(
      thrown(() => builtIn.decide('pki_int/issue/web/extra', pki, { common_name: 'x' }, none)).code,
      'a role is one segment',
    ).to.equal('ERR_WRITE_REFUSED');
  });

  it('writes to SSH sign and issue with their own parameters', () => {
    expect(
      builtIn.decide(
        'ssh/sign/ops',
        ssh,
        { public_key: 'k', valid_principals: 'ops', cert_type: 'user', key_id: 'x', ttl: '1h' },
        none,
      ),
    ).to.equal('write');
    expect(builtIn.decide('ssh/issue/ops', ssh, { key_type: 'ed25519', valid_principals: 'ops' }, none)).to.equal(
      'write',
    );
    const err = thrown(() =>
      builtIn.decide('ssh/sign/ops', ssh, { public_key: 'k', critical_options: 'force-command=x' }, none),
    );
    expect(err.code).to.equal('ERR_WRITE_REFUSED');
    expect(err.message)
      .to.contain('critical_options')
      .and.contain('DSO_ALLOWED_WRITES')
      .and.not.contain('force-command');
    expect(thrown(() => builtIn.decide('ssh/creds/otp', ssh, { ip: '10.0.0.1' }, none)).code).to.equal(
      'ERR_WRITE_REFUSED',
    );
  });

  it('refuses any other query string, naming the entry that would allow it and never a value', () => {
    const canary = secret('writes-canary-77a1');
    const err = thrown(() => builtIn.decide('database/rotate-root/pg', db, { secret_marker_value: canary }, none));
    expect(err.code).to.equal('ERR_WRITE_REFUSED');
    expect(err.message).to.contain('add database/rotate-root/pg?secret_marker_value to DSO_ALLOWED_WRITES');
    expect(err.message).not.to.contain(canary);
  });

  it('allows what DSO_ALLOWED_WRITES lists: globs and templates in the path, only the parameters named', () => {
    const policy = new WritePolicy(
      parseAllowedWrites('transit/encrypt/{stack}?plaintext,context; database/static-creds/*?x'),
    );
    expect(
      policy.decide(
        'transit/encrypt/shop',
        { path: 'transit/', type: 'transit' },
        { plaintext: 'aGk=' },
        { stack: 'shop' },
      ),
    ).to.equal('write');
    expect(
      thrown(() =>
        policy.decide(
          'transit/encrypt/shop',
          { path: 'transit/', type: 'transit' },
          { plaintext: 'aGk=' },
          { stack: 'blog' },
        ),
      ).code,
    ).to.equal('ERR_WRITE_REFUSED');
    expect(
      thrown(() =>
        policy.decide('transit/encrypt/shop', { path: 'transit/', type: 'transit' }, { plaintext: 'aGk=' }, {}),
      ).code,
      'no stack: the rule does not apply',
    ).to.equal('ERR_WRITE_REFUSED');
    expect(policy.decide('database/static-creds/a/b', db, { x: '1' }, none)).to.equal('write');
    expect(policy.requesterDependence).to.equal('{stack} in DSO_ALLOWED_WRITES');
    expect(new WritePolicy(parseAllowedWrites('a/{secret}?x')).requesterDependence).to.equal(undefined);
  });

  it('shows parameter names only with the characters a setting entry may hold', () => {
    const err = thrown(() => builtIn.decide('database/x', db, { 'a\n{"forged":1}': 'v' }, none));
    expect(err.message).to.contain('a??"forged"?1?'.replace(/"/g, '?')).and.not.contain('\n');
  });

  it('never writes to KV, whatever DSO_ALLOWED_WRITES says', () => {
    const policy = new WritePolicy(parseAllowedWrites('secret/*?password'));
    const err = thrown(() =>
      policy.decide('secret/data/app', { path: 'secret/', type: 'kv', kvVersion: 2 }, { password: 'x' }, none),
    );
    expect(err.code).to.equal('ERR_WRITE_REFUSED');
    expect(err.message).to.contain('KV secret');
  });

  it('parses DSO_ALLOWED_WRITES strictly', () => {
    expect(parseAllowedWrites(undefined)).to.deep.equal([]);
    expect(parseAllowedWrites(' /a/b?x,y ;c?z; ')).to.deep.equal([
      { pattern: 'a/b', params: ['x', 'y'] },
      { pattern: 'c', params: ['z'] },
    ]);
    for (const bad of ['a/b', 'a?', 'a?x y', '?x', 'a?x,'])
      expect(thrown(() => parseAllowedWrites(bad)).code, bad).to.equal('ERR_SETTINGS');
  });
});
