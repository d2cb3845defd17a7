// Vault's data -> the bytes of the secret file, within Docker's 1..511,999 byte bounds.
import { expect } from 'chai';
import { MAX_VALUE_BYTES, render } from '../../src/resolve/formats';
import { thrown } from './helpers';

const WHERE = 'secret/data/app/db';
const SECRET_VALUE = 'formats-canary-s3cr3t-value-81f2';

const text = (buf: Buffer): string => buf.toString('utf8');

describe('render (dso.format)', () => {
  describe('raw', () => {
    it('gives a string field as its UTF-8 bytes, unchanged (no newline added)', () => {
      expect(text(render({ password: 'p@ss wörd' }, 'password', 'raw', WHERE))).to.equal('p@ss wörd');
    });

    it('gives a number as its decimal text', () => {
      expect(text(render({ port: 5432 }, 'port', 'raw', WHERE))).to.equal('5432');
    });

    it('gives a boolean as true/false', () => {
      expect(text(render({ on: false }, 'on', 'raw', WHERE))).to.equal('false');
    });

    it('gives an object as JSON', () => {
      expect(JSON.parse(text(render({ nested: { a: 1, b: 'x' } }, 'nested', 'raw', WHERE)))).to.deep.equal({
        a: 1,
        b: 'x',
      });
    });

    it('gives a list of strings one per line (a PKI ca_chain)', () => {
      expect(text(render({ ca_chain: ['A', 'B'] }, 'ca_chain', 'raw', WHERE))).to.equal('A\nB');
    });
  });

  describe('json', () => {
    it('gives the whole data object without a field', () => {
      const data = { user: 'web', port: 5432, nested: { a: [1, 2] } };
      expect(JSON.parse(text(render(data, undefined, 'json', WHERE)))).to.deep.equal(data);
    });

    it('gives the JSON of one field', () => {
      expect(text(render({ user: 'web' }, 'user', 'json', WHERE))).to.equal('"web"');
      expect(JSON.parse(text(render({ o: { k: true } }, 'o', 'json', WHERE)))).to.deep.equal({ k: true });
    });
  });

  describe('env', () => {
    it('writes sorted KEY=value lines, ending with a newline', () => {
      expect(text(render({ MODE: 'prod', API_KEY: 'k1', _X: 3 }, undefined, 'env', WHERE))).to.equal(
        'API_KEY=k1\nMODE=prod\n_X=3\n',
      );
    });

    it('reads the object of a field', () => {
      expect(text(render({ env: { B: '2', A: '1' } }, 'env', 'env', WHERE))).to.equal('A=1\nB=2\n');
    });

    it('refuses a field that is not an object', () => {
      expect(thrown(() => render({ env: 'A=1' }, 'env', 'env', WHERE)).code).to.equal('ERR_FORMAT');
    });

    for (const key of ['1ABC', 'MY-KEY', 'A B', 'é']) {
      it(`refuses the key ${JSON.stringify(key)}, which is not a variable name`, () => {
        const err = thrown(() => render({ [key]: SECRET_VALUE }, undefined, 'env', WHERE));
        expect(err.code).to.equal('ERR_FORMAT');
        expect(err.message).to.include('not a valid variable name');
        expect(err.message).to.not.include(SECRET_VALUE);
      });
    }

    for (const [what, value] of [
      ['\\n', `${SECRET_VALUE}\nline2`],
      ['\\r', `${SECRET_VALUE}\rline2`],
      ['NUL', `${SECRET_VALUE}\u0000x`],
    ]) {
      it(`refuses a value holding ${what} without showing it`, () => {
        const err = thrown(() => render({ KEY: value }, undefined, 'env', WHERE));
        expect(err.code).to.equal('ERR_FORMAT');
        expect(err.message).to.include('KEY');
        expect(err.message).to.not.include(SECRET_VALUE);
      });
    }

    it('refuses an empty object (nothing to mount)', () => {
      expect(thrown(() => render({}, undefined, 'env', WHERE)).code).to.equal('ERR_VALUE_EMPTY');
    });
  });

  describe('base64', () => {
    const bytes = Buffer.from([0x00, 0xfb, 0xff, 0xfe, 0x3e, 0x3f, 0x0a, 0x80]);

    it('decodes the standard alphabet to the exact bytes (binary included)', () => {
      const encoded = bytes.toString('base64');
      expect(encoded).to.match(/[+/]/);
      expect(render({ file: encoded }, 'file', 'base64', WHERE).equals(bytes)).to.equal(true);
    });

    it('decodes the URL alphabet', () => {
      const encoded = bytes.toString('base64url');
      expect(encoded).to.match(/[-_]/);
      expect(render({ file: encoded }, 'file', 'base64', WHERE).equals(bytes)).to.equal(true);
    });

    it('ignores whitespace and line breaks (PEM-style wrapping)', () => {
      const encoded = Buffer.from('hello world, wrapped').toString('base64');
      const wrapped = `${encoded.slice(0, 8)}\n${encoded.slice(8, 16)}\r\n ${encoded.slice(16)}\n`;
      expect(text(render({ file: wrapped }, 'file', 'base64', WHERE))).to.equal('hello world, wrapped');
    });

    for (const bad of ['not base64!', 'abc=def', 'abcde', '====', 'ab$c']) {
      it(`refuses ${JSON.stringify(bad)} as not valid base64, without showing it`, () => {
        const err = thrown(() => render({ file: bad }, 'file', 'base64', WHERE));
        expect(err.code).to.equal('ERR_FORMAT');
        expect(err.message).to.include('"file"');
        expect(err.message).to.not.include(bad);
      });
    }
  });

  describe('pem', () => {
    it('bundles private key, certificate and chain, one per block', () => {
      const out = text(
        render(
          { private_key: 'KEY\n', certificate: 'CERT', ca_chain: ['CA1', 'CA2'], issuing_ca: 'CA1' },
          undefined,
          'pem',
          WHERE,
        ),
      );
      expect(out).to.equal('KEY\nCERT\nCA1\nCA2\n');
    });

    it('refuses a field', () => {
      expect(thrown(() => render({ private_key: 'K', certificate: 'C' }, 'certificate', 'pem', WHERE)).code).to.equal(
        'ERR_FORMAT',
      );
    });

    it('refuses data without a certificate', () => {
      expect(thrown(() => render({ private_key: 'K' }, undefined, 'pem', WHERE)).code).to.equal('ERR_FORMAT');
    });
  });

  describe('a missing field', () => {
    it('is ERR_FIELD_MISSING naming the field and the path', () => {
      const err = thrown(() => render({ user: 'web' }, 'password', 'raw', WHERE));
      expect(err.code).to.equal('ERR_FIELD_MISSING');
      expect(err.message).to.include('"password"');
      expect(err.message).to.include(WHERE);
    });

    it('lists the field names there, sorted, but never their values', () => {
      const err = thrown(() =>
        render({ user: 'web-user-canary', pass: SECRET_VALUE, api_key: SECRET_VALUE }, 'password', 'raw', WHERE),
      );
      expect(err.message).to.include('"api_key", "pass", "user"');
      expect(err.message).to.not.include(SECRET_VALUE);
      expect(err.message).to.not.include('web-user-canary');
    });

    it('says "none" when the secret has no fields', () => {
      expect(thrown(() => render({}, 'password', 'raw', WHERE)).message).to.include('none');
    });

    it('does not take inherited properties for fields', () => {
      expect(thrown(() => render({}, 'toString', 'raw', WHERE)).code).to.equal('ERR_FIELD_MISSING');
    });
  });

  describe('size bounds', () => {
    it('refuses an empty value with ERR_VALUE_EMPTY', () => {
      const err = thrown(() => render({ blank: '' }, 'blank', 'raw', WHERE));
      expect(err.code).to.equal('ERR_VALUE_EMPTY');
      expect(err.message).to.include(`${WHERE}#blank`);
    });

    it('refuses a null field as empty', () => {
      expect(thrown(() => render({ n: null }, 'n', 'raw', WHERE)).code).to.equal('ERR_VALUE_EMPTY');
    });

    it('refuses base64 that decodes to nothing', () => {
      expect(thrown(() => render({ f: '' }, 'f', 'base64', WHERE)).code).to.equal('ERR_VALUE_EMPTY');
    });

    it('accepts 1 byte', () => {
      expect(render({ f: 'x' }, 'f', 'raw', WHERE).length).to.equal(1);
    });

    it('accepts 511,999 bytes', () => {
      expect(MAX_VALUE_BYTES).to.equal(511_999);
      expect(render({ f: 'x'.repeat(511_999) }, 'f', 'raw', WHERE).length).to.equal(511_999);
    });

    it('refuses 512,000 bytes with ERR_VALUE_TOO_LARGE, giving the size but not the value', () => {
      const err = thrown(() => render({ f: 'y'.repeat(512_000) }, 'f', 'raw', WHERE));
      expect(err.code).to.equal('ERR_VALUE_TOO_LARGE');
      expect(err.message).to.include('512000');
      expect(err.message).to.not.include('yyyyyyyy');
    });

    it('counts bytes, not characters', () => {
      expect(thrown(() => render({ f: 'é'.repeat(256_000) }, 'f', 'raw', WHERE)).code).to.equal('ERR_VALUE_TOO_LARGE');
    });

    it('measures base64 after decoding', () => {
      const ok = Buffer.alloc(511_999, 7).toString('base64');
      expect(render({ f: ok }, 'f', 'base64', WHERE).length).to.equal(511_999);
      const tooLarge = Buffer.alloc(512_000, 7).toString('base64');
      expect(thrown(() => render({ f: tooLarge }, 'f', 'base64', WHERE)).code).to.equal('ERR_VALUE_TOO_LARGE');
    });

    it('measures a whole object rendered as JSON', () => {
      expect(thrown(() => render({ f: 'z'.repeat(512_000) }, undefined, 'json', WHERE)).code).to.equal(
        'ERR_VALUE_TOO_LARGE',
      );
    });
  });
});
