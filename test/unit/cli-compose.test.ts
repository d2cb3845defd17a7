// `docker dso up`'s compose transformation: dso:// environment values become driver-backed
// secrets plus <VAR>_FILE, declared DSO secrets pass through, and nothing else changes.
import { expect } from 'chai';
import YAML from 'yaml';
import {
  ComposeError,
  parseCompose,
  secretKeyFor,
  stackNameFrom,
  stringifyCompose,
  transformCompose,
} from '../../src/cli/compose';
import { thrownBy } from './helpers';

type Obj = Record<string, any>;
const doc = (yaml: string): Obj => parseCompose(yaml, 'compose.yml');
const transform = (yaml: string, driver = 'dso') => {
  const r = transformCompose(doc(yaml), { driver });
  return { ...r, compose: r.compose as Obj };
};

const composeError = (fn: () => unknown): ComposeError => thrownBy(ComposeError, fn);

describe('cli: compose transformation (docker dso up)', () => {
  it('turns a dso:// environment value (mapping form) into a secret and <VAR>_FILE', () => {
    const r = transform(`
services:
  web:
    image: app
    environment:
      LOG_LEVEL: debug
      DB_PASSWORD: dso://secret/data/app/db#password
      PORT: 8080
`);
    const web = r.compose.services.web;
    expect(web.environment).to.deep.equal({
      LOG_LEVEL: 'debug',
      DB_PASSWORD_FILE: '/run/secrets/db_password',
      PORT: 8080,
    });
    expect(Object.keys(web.environment), 'order kept').to.deep.equal(['LOG_LEVEL', 'DB_PASSWORD_FILE', 'PORT']);
    expect(web.secrets).to.deep.equal(['db_password']);
    expect(r.compose.secrets).to.deep.equal({
      db_password: { driver: 'dso', labels: { 'dso.ref': 'dso://secret/data/app/db#password' } },
    });
    expect(r.injected).to.deep.equal([
      {
        service: 'web',
        variable: 'DB_PASSWORD',
        secret: 'db_password',
        reference: 'dso://secret/data/app/db#password',
        file: '/run/secrets/db_password',
      },
    ]);
  });

  it('handles the list form of environment and leaves other items (also bare names) alone', () => {
    const r = transform(`
services:
  web:
    image: app
    environment:
      - A=1
      - API_KEY=dso://secret/app#key
      - HOME
`);
    expect(r.compose.services.web.environment).to.deep.equal(['A=1', 'API_KEY_FILE=/run/secrets/api_key', 'HOME']);
    expect(r.compose.services.web.secrets).to.deep.equal(['api_key']);
  });

  it('never leaves a dso:// value or the variable itself in the environment', () => {
    const r = transform(`
services:
  a:
    image: app
    environment: { X: "dso://secret/a#x", Y: "dso://secret/a#y" }
`);
    const text = JSON.stringify(r.compose.services.a.environment);
    expect(text).not.to.contain('dso://');
    expect(r.compose.services.a.environment).to.have.all.keys('X_FILE', 'Y_FILE');
  });

  it('keeps existing service secrets and adds to them', () => {
    const r = transform(`
services:
  web:
    image: app
    secrets: [tls_cert, { source: other, target: other.txt }]
    environment: { DB_PASSWORD: "dso://secret/db#password" }
secrets:
  tls_cert: { file: ./cert.pem }
  other: { external: true }
`);
    expect(r.compose.services.web.secrets).to.deep.equal([
      'tls_cert',
      { source: 'other', target: 'other.txt' },
      'db_password',
    ]);
    expect(r.compose.secrets.tls_cert).to.deep.equal({ file: './cert.pem' });
    expect(r.compose.secrets.other).to.deep.equal({ external: true });
  });

  it('passes secrets declared with driver: dso through, setting the driver to the plugin name', () => {
    const r = transform(
      `
version: "3.8"
services:
  web: { image: app, secrets: [db_password] }
secrets:
  db_password:
    driver: dso
    labels: { dso.ref: "dso://secret/data/app/db#password" }
  plain: { file: ./x }
`,
      'dso-test',
    );
    expect(r.passedThrough).to.deep.equal(['db_password']);
    expect(r.compose.secrets.db_password).to.deep.equal({
      driver: 'dso-test',
      labels: { 'dso.ref': 'dso://secret/data/app/db#password' },
    });
    expect(r.compose.secrets.plain).to.deep.equal({ file: './x' });
    expect(r.injected).to.deep.equal([]);
    expect(r.warnings).to.deep.equal([]);
  });

  it('accepts dso:latest and the plugin name itself as the DSO driver; other drivers are left alone', () => {
    const r = transform(
      `
services: { web: { image: app } }
secrets:
  a: { driver: "dso:latest", labels: { dso.ref: "dso://x/y" } }
  b: { driver: mydso, labels: { dso.ref: "dso://x/z" } }
  c: { driver: other-driver }
`,
      'mydso',
    );
    expect(r.passedThrough).to.deep.equal(['a', 'b']);
    expect(r.compose.secrets.a.driver).to.equal('mydso');
    expect(r.compose.secrets.c).to.deep.equal({ driver: 'other-driver' });
  });

  it('warns about a declared DSO secret without dso.ref/dso.path, and about driver_opts', () => {
    const r = transform(`
services: { web: { image: app } }
secrets:
  s: { driver: dso, driver_opts: { path: x } }
`);
    expect(r.warnings.join('\n'))
      .to.match(/neither a dso.ref nor a dso.path/)
      .and.to.match(/driver_opts never reach/);
  });

  it('shares one secret when several variables or services name the same reference', () => {
    const r = transform(`
services:
  a: { image: app, environment: { DB_PASSWORD: "dso://secret/db#password" } }
  b: { image: app, environment: { PGPASSWORD: "dso://secret/db#password" } }
`);
    expect(Object.keys(r.compose.secrets)).to.deep.equal(['db_password']);
    expect(r.compose.services.b.environment).to.deep.equal({ PGPASSWORD_FILE: '/run/secrets/db_password' });
    expect(r.compose.services.b.secrets).to.deep.equal(['db_password']);
  });

  it('names a secret after its service when the variable name is taken by another reference', () => {
    const r = transform(`
services:
  a: { image: app, environment: { TOKEN: "dso://secret/a#token" } }
  b: { image: app, environment: { TOKEN: "dso://secret/b#token" } }
  c: { image: app, environment: { TOKEN: "dso://secret/c#token", PASSWORD: "dso://secret/c#pw" } }
secrets:
  password: { external: true }
`);
    expect(r.compose.secrets.token.labels['dso.ref']).to.equal('dso://secret/a#token');
    expect(r.compose.secrets.b_token.labels['dso.ref']).to.equal('dso://secret/b#token');
    expect(r.compose.secrets.c_token.labels['dso.ref']).to.equal('dso://secret/c#token');
    expect(r.compose.secrets.c_password.labels['dso.ref'], 'a declared secret name is never reused').to.equal(
      'dso://secret/c#pw',
    );
    expect(r.compose.secrets.password).to.deep.equal({ external: true });
    expect(r.compose.services.b.environment).to.deep.equal({ TOKEN_FILE: '/run/secrets/b_token' });
  });

  it('mounts under another target when the name is already a target in the service', () => {
    const r = transform(`
services:
  a:
    image: app
    secrets: [{ source: tls, target: api_key }]
    environment: { API_KEY: "dso://secret/a#key" }
secrets:
  tls: { file: ./t }
`);
    expect(r.compose.services.a.secrets[1]).to.deep.equal({ source: 'api_key', target: 'api_key_2' });
    expect(r.compose.services.a.environment).to.deep.equal({ API_KEY_FILE: '/run/secrets/api_key_2' });
  });

  it('makes secret names from variable names', () => {
    expect(secretKeyFor('DB_PASSWORD')).to.equal('db_password');
    expect(secretKeyFor('__X__Y')).to.equal('x__y');
    expect(secretKeyFor('a:b')).to.equal('a_b');
    expect(secretKeyFor('___')).to.equal('secret');
  });

  it('refuses a variable whose _FILE twin is already set', () => {
    const e = composeError(() =>
      transform(`
services:
  a: { image: app, environment: { DB_PASSWORD: "dso://secret/a#p", DB_PASSWORD_FILE: /x } }
`),
    );
    expect(e.message).to.contain('DB_PASSWORD_FILE');
  });

  it("refuses a malformed reference with the plugin's own message", () => {
    const e = composeError(() =>
      transform(`
services:
  a: { image: app, environment: { X: "dso://secret//a" } }
`),
    );
    expect(e.message).to.contain('services.a.environment.X').and.to.contain('empty segment');
  });

  it('raises an old 3.x format to 3.8 (drivers need it), refuses 2.x, sets a missing one (20.10 reads none as 1.0)', () => {
    const old = transform(`
version: "3.4"
services: { a: { image: app, environment: { X: "dso://s/a#x" } } }
`);
    expect(old.compose.version).to.equal('3.8');
    expect(old.warnings[0]).to.contain('3.8');
    expect(
      transform(`version: "3.10"\nservices: { a: { image: app, environment: { X: "dso://s/a#x" } } }`).compose.version,
    ).to.equal('3.10');
    const none = transform('services: { a: { image: app, environment: { X: "dso://s/a#x" } } }');
    expect(none.compose.version).to.equal('3.8');
    expect(none.warnings).to.deep.equal([]);
    expect(
      composeError(() =>
        transform('version: "2.4"\nservices: { a: { image: app, environment: { X: "dso://s/a#x" } } }'),
      ).message,
    ).to.contain('3.x');
  });

  it('leaves a file without references untouched (no secrets section added, version kept)', () => {
    const input = doc('version: "3.1"\nservices: { a: { image: app, environment: { X: "1" } } }');
    const r = transformCompose(input, { driver: 'dso' });
    expect(r.compose).to.deep.equal(input);
  });

  it('takes the top-level name: out (docker stack deploy refuses it) and returns it', () => {
    const r = transform('name: shop\nservices: { a: { image: app } }');
    expect(r.name).to.equal('shop');
    expect(r.compose).not.to.have.property('name');
  });

  it('does not change its input', () => {
    const input = doc('services: { a: { image: app, environment: { X: "dso://s/a#x" } } }');
    const copy = structuredClone(input);
    transformCompose(input, { driver: 'dso' });
    expect(input).to.deep.equal(copy);
  });

  it('resolves YAML anchors and merge keys, and writes YAML docker can read back', () => {
    const r = transform(`
x-env: &env
  DB_PASSWORD: dso://secret/db#password
services:
  a:
    image: app
    environment:
      <<: *env
      OTHER: "1"
  b:
    image: app
    environment: *env
`);
    expect(r.compose.services.a.environment).to.deep.equal({
      DB_PASSWORD_FILE: '/run/secrets/db_password',
      OTHER: '1',
    });
    expect(r.compose.services.b.environment).to.deep.equal({ DB_PASSWORD_FILE: '/run/secrets/db_password' });
    const text = stringifyCompose(r.compose);
    expect(text).not.to.match(/[&*]a\d/);
    expect(YAML.parse(text)).to.deep.equal(r.compose);
  });

  it('reports invalid YAML and files without services', () => {
    expect(composeError(() => parseCompose('services: [a', 'x.yml')).message).to.contain('x.yml is not valid YAML');
    expect(composeError(() => parseCompose('- a', 'x.yml')).message).to.contain('does not hold a compose file');
    expect(composeError(() => transform('version: "3.8"')).message).to.contain('no services');
  });

  it('derives stack names like compose derives project names', () => {
    expect(stackNameFrom('My App')).to.equal('myapp');
    expect(stackNameFrom('_shop.v2')).to.equal('shopv2');
    expect(stackNameFrom('...')).to.equal('');
  });
});
