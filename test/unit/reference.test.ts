// dso://<path>[?<params>][#<field>]: what a secret reference may and may not say.
import { expect } from 'chai';
import { checkField, checkPath, parseReference } from '../../src/resolve/reference';
import { thrown } from './helpers';

describe('parseReference (dso:// references)', () => {
  describe('accepts', () => {
    it('a plain API path and keeps it as written', () => {
      expect(parseReference('dso://secret/data/app/db')).to.deep.equal({
        path: 'secret/data/app/db',
        field: undefined,
        params: {},
      });
    });

    it('a field after #', () => {
      const ref = parseReference('dso://secret/data/app/db#password');
      expect(ref.path).to.equal('secret/data/app/db');
      expect(ref.field).to.equal('password');
    });

    it('a field holding characters that are special in a path (?, /, space)', () => {
      const ref = parseReference('dso://secret/data/app/db#a?b/c d');
      expect(ref.path).to.equal('secret/data/app/db');
      expect(ref.field).to.equal('a?b/c d');
      expect(ref.params).to.deep.equal({});
    });

    it('query parameters, percent-decoded in keys and values', () => {
      const ref = parseReference(
        'dso://pki/issue/web?common_name=web.example.com&alt_names=a%2Cb&ip%5Fsans=10.0.0.1&ttl=1h#certificate',
      );
      expect(ref.path).to.equal('pki/issue/web');
      expect(ref.field).to.equal('certificate');
      expect(ref.params).to.deep.equal({
        common_name: 'web.example.com',
        alt_names: 'a,b',
        ip_sans: '10.0.0.1',
        ttl: '1h',
      });
    });

    it('a parameter without "=" as an empty value, and skips empty pairs', () => {
      expect(parseReference('dso://pki/issue/web?exclude_cn_from_sans&&format=pem').params).to.deep.equal({
        exclude_cn_from_sans: '',
        format: 'pem',
      });
    });

    it('parameter values holding templates (filled later)', () => {
      expect(parseReference('dso://pki/issue/web?common_name={service}.example.com').params.common_name).to.equal(
        '{service}.example.com',
      );
    });

    it('templates in path segments', () => {
      expect(parseReference('dso://secret/data/{stack}/{secret}').path).to.equal('secret/data/{stack}/{secret}');
    });

    it('the characters Vault paths commonly hold (_ . - @ + = : , ~)', () => {
      const path = 'kv/a_b.c-d@e+f=g:h,i~j/x';
      expect(parseReference(`dso://${path}`).path).to.equal(path);
    });

    it('a path of exactly 1024 characters', () => {
      const path = `secret/${'a'.repeat(1024 - 'secret/'.length)}`;
      expect(path.length).to.equal(1024);
      expect(parseReference(`dso://${path}`).path).to.equal(path);
    });
  });

  describe('refuses with ERR_REFERENCE', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['a wrong scheme', 'vault://secret/data/app', /must start with dso:\/\//],
      ['a missing scheme', 'secret/data/app', /must start with dso:\/\//],
      ['an upper-case scheme', 'DSO://secret/data/app', /must start with dso:\/\//],
      ['leading whitespace', ' dso://secret/data/app', /must start with dso:\/\//],
      ['an empty path', 'dso://', /path is empty/],
      ['an empty path with only a field', 'dso://#password', /path is empty/],
      ['an empty path with only parameters', 'dso://?a=b', /path is empty/],
      ['a leading "/"', 'dso:///secret/data/app', /must not start with "\/"/],
      ['"//" inside the path', 'dso://secret//data/app', /empty segment/],
      ['a trailing "/"', 'dso://secret/data/app/', /empty segment/],
      ['a "." segment', 'dso://secret/./app', /"\." or "\.\." segments/],
      ['a ".." segment', 'dso://secret/data/../sys/raw', /"\." or "\.\." segments/],
      ['a ".." segment at the start', 'dso://../secret', /"\." or "\.\." segments/],
      ['a percent-encoded ".." (%2e%2e)', 'dso://secret/data/%2e%2e/sys', /not allowed/],
      ['a percent-encoded slash (%2f)', 'dso://secret/data/a%2fb', /not allowed/],
      ['a backslash', 'dso://secret/data/..\\sys', /not allowed/],
      ['a space in the path', 'dso://secret/data/my app', /not allowed/],
      ['a tab in the path', 'dso://secret/data/app\t', /not allowed/],
      ['a newline in the path', 'dso://secret/data/app\nx', /not allowed/],
      ['a non-ASCII character in the path', 'dso://secret/data/caf\u00e9', /not allowed/],
      ['an empty field after #', 'dso://secret/data/app#', /field name/],
      ['a control character in the field', 'dso://secret/data/app#pass\u0007word', /field name/],
      ['a field longer than 256 characters', `dso://secret/data/app#${'f'.repeat(257)}`, /field name/],
      [
        'a badly percent-encoded parameter',
        'dso://pki/issue/web?common_name=%E0%A4%A',
        /not correctly percent-encoded/,
      ],
    ];
    for (const [what, text, message] of cases) {
      it(`a reference with ${what}`, () => {
        const err = thrown(() => parseReference(text));
        expect(err.code).to.equal('ERR_REFERENCE');
        expect(err.message).to.match(message);
      });
    }

    it('a path longer than 1024 characters', () => {
      const err = thrown(() => parseReference(`dso://secret/${'a'.repeat(1024)}`));
      expect(err.code).to.equal('ERR_REFERENCE');
      expect(err.message).to.match(/longer than 1024/);
    });

    it('names where the reference came from in the message', () => {
      expect(thrown(() => parseReference('nope', 'label dso.ref')).message).to.match(/^label dso\.ref/);
    });

    it('quotes at most 64 characters of a bad segment', () => {
      const err = thrown(() => parseReference(`dso://secret/${'%'.repeat(500)}`));
      expect(err.message).to.not.include('%'.repeat(65));
    });
  });
});

describe('checkPath and checkField', () => {
  it('checkPath accepts a filled API path', () => {
    expect(() => checkPath('database/creds/app', 'path')).to.not.throw();
  });

  it('checkPath refuses ".." however it was produced', () => {
    expect(thrown(() => checkPath('secret/data/..', 'path')).code).to.equal('ERR_REFERENCE');
  });

  it('checkField accepts 256 printable characters and refuses 257', () => {
    expect(() => checkField('x'.repeat(256), 'field')).to.not.throw();
    expect(thrown(() => checkField('x'.repeat(257), 'field')).code).to.equal('ERR_REFERENCE');
  });
});
