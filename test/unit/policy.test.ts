// DSO_ALLOWED_PATHS: `*` spans segments, `+` is one segment, templates are filled per
// request, and the early check accounts for KV v2 paths written in the CLI form.
import { expect } from 'chai';
import { PathPolicy } from '../../src/resolve/policy';
import type { TemplateContext } from '../../src/resolve/template';
import { thrown } from './helpers';

const none: TemplateContext = {};

describe('PathPolicy (DSO_ALLOWED_PATHS)', () => {
  it('allows every path when no pattern is set', () => {
    const policy = new PathPolicy([]);
    expect(policy.restricted).to.equal(false);
    expect(policy.allows('anything/at/all', none)).to.equal(true);
    expect(policy.mayAllow('anything', none)).to.equal(true);
    expect(() => policy.check('sys/raw/x', none)).to.not.throw();
  });

  it('matches a pattern without globs exactly', () => {
    const policy = new PathPolicy(['secret/data/app/db']);
    expect(policy.restricted).to.equal(true);
    expect(policy.allows('secret/data/app/db', none)).to.equal(true);
    expect(policy.allows('secret/data/app/db2', none)).to.equal(false);
    expect(policy.allows('secret/data/app', none)).to.equal(false);
    expect(policy.allows('x/secret/data/app/db', none)).to.equal(false);
  });

  it('takes "." in a pattern literally, not as a regular expression', () => {
    const policy = new PathPolicy(['secret/data/a.b']);
    expect(policy.allows('secret/data/a.b', none)).to.equal(true);
    expect(policy.allows('secret/data/aXb', none)).to.equal(false);
  });

  it('lets "*" match any run of characters across segments', () => {
    const policy = new PathPolicy(['secret/data/app/*']);
    expect(policy.allows('secret/data/app/db', none)).to.equal(true);
    expect(policy.allows('secret/data/app/team/deep/db', none)).to.equal(true);
    expect(policy.allows('secret/data/other/db', none)).to.equal(false);
  });

  it('lets "*" in the middle of a segment match a prefix', () => {
    const policy = new PathPolicy(['secret/data/app-*']);
    expect(policy.allows('secret/data/app-web', none)).to.equal(true);
    expect(policy.allows('secret/data/api', none)).to.equal(false);
  });

  it('lets "+" match exactly one segment', () => {
    const policy = new PathPolicy(['secret/data/+/db']);
    expect(policy.allows('secret/data/web/db', none)).to.equal(true);
    expect(policy.allows('secret/data/web/team/db', none)).to.equal(false);
    expect(policy.allows('secret/data//db', none)).to.equal(false);
  });

  it('ignores a leading "/" in a pattern', () => {
    expect(new PathPolicy(['/secret/data/*']).allows('secret/data/x', none)).to.equal(true);
  });

  it('allows a path matched by any one of several patterns', () => {
    const policy = new PathPolicy(['secret/data/a/*', 'database/creds/+']);
    expect(policy.allows('database/creds/app', none)).to.equal(true);
    expect(policy.allows('secret/data/a/x', none)).to.equal(true);
    expect(policy.allows('database/creds/app/extra', none)).to.equal(false);
  });

  describe('with templates', () => {
    const policy = new PathPolicy(['secret/data/{stack}/*']);

    it('confines a stack to its own subtree', () => {
      expect(policy.allows('secret/data/shop/db', { stack: 'shop' })).to.equal(true);
      expect(policy.allows('secret/data/blog/db', { stack: 'shop' })).to.equal(false);
      expect(policy.allows('secret/data/blog/db', { stack: 'blog' })).to.equal(true);
    });

    it('fills templates per request, not once', () => {
      const p = new PathPolicy(['secret/data/{service}']);
      expect(p.allows('secret/data/web', { service: 'web' })).to.equal(true);
      expect(p.allows('secret/data/web', { service: 'api' })).to.equal(false);
      expect(p.allows('secret/data/api', { service: 'api' })).to.equal(true);
    });

    it('lets a pattern whose template cannot be filled allow nothing', () => {
      expect(policy.allows('secret/data/shop/db', {})).to.equal(false);
      expect(policy.mayAllow('secret/shop/db', {})).to.equal(false);
    });

    it('still applies the other patterns when one cannot be filled', () => {
      const p = new PathPolicy(['secret/data/{stack}/*', 'secret/data/shared/*']);
      expect(p.allows('secret/data/shared/ca', {})).to.equal(true);
      expect(p.allows('secret/data/shop/db', {})).to.equal(false);
    });

    it('lets a pattern with an unknown template allow nothing', () => {
      expect(new PathPolicy(['secret/data/{bogus}/*']).allows('secret/data/x/y', { stack: 'x' })).to.equal(false);
    });

    it('refuses a value that would escape the subtree', () => {
      expect(policy.allows('secret/data/../sys', { stack: '..' })).to.equal(false);
    });

    it('matches a filled-in value literally, so a "+" in a stack name is no glob', () => {
      expect(policy.allows('secret/data/a+b/db', { stack: 'a+b' })).to.equal(true);
      expect(policy.allows('secret/data/aXXb/db', { stack: 'a+b' })).to.equal(false);
    });
  });

  describe('early check of KV v2 paths in CLI form (mayAllow)', () => {
    const policy = new PathPolicy(['secret/data/app/*']);

    it('may allow secret/app/x, which becomes secret/data/app/x on a KV v2 mount', () => {
      expect(policy.allows('secret/app/x', none)).to.equal(false);
      expect(policy.mayAllow('secret/app/x', none)).to.equal(true);
    });

    it('may allow a path on a mount of several segments (team/kv/app/x -> team/kv/data/app/x)', () => {
      expect(new PathPolicy(['team/kv/data/app/*']).mayAllow('team/kv/app/x', none)).to.equal(true);
    });

    it('may allow the API path itself', () => {
      expect(policy.mayAllow('secret/data/app/x', none)).to.equal(true);
    });

    it('refuses a path that cannot become an allowed one', () => {
      expect(policy.mayAllow('secret/other/x', none)).to.equal(false);
      expect(policy.mayAllow('database/creds/app', none)).to.equal(false);
    });

    it('check(early) passes the CLI form while the final check refuses it', () => {
      expect(() => policy.check('secret/app/x', none, true)).to.not.throw();
      const err = thrown(() => policy.check('secret/app/x', none));
      expect(err.code).to.equal('ERR_PATH_REFUSED');
    });
  });

  it('check throws ERR_PATH_REFUSED naming the path, the patterns and the setting', () => {
    const err = thrown(() =>
      new PathPolicy(['secret/data/app/*', 'database/creds/+']).check('secret/data/other/db', none),
    );
    expect(err.code).to.equal('ERR_PATH_REFUSED');
    expect(err.message).to.include('secret/data/other/db');
    expect(err.message).to.include('DSO_ALLOWED_PATHS');
    expect(err.message).to.include('secret/data/app/*, database/creds/+');
  });
});
