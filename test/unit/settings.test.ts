// Settings from the environment and /etc/dso/dso.json: defaults, precedence, checks, and
// problems that name the setting without ever echoing its value.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseDuration } from '../../src/config/duration';
import { DEFAULT_SOCKET, describeSettings, loadSettings } from '../../src/config/settings';

const CANARY = 'settings-canary-9d1e77';

describe('parseDuration', () => {
  const cases: Array<[string, number | undefined]> = [
    ['10s', 10_000],
    ['2500ms', 2500],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['1.5s', 1500],
    ['7', 7000],
    [' 3s ', 3000],
    ['', undefined],
    ['s', undefined],
    ['-1s', undefined],
    ['10 seconds', undefined],
    ['1d', undefined],
  ];
  for (const [input, expected] of cases) {
    it(`reads ${JSON.stringify(input)} as ${expected === undefined ? 'malformed' : `${expected} ms`}`, () => {
      expect(parseDuration(input)).to.equal(expected);
    });
  }
});

describe('loadSettings', () => {
  let dir: string;
  const missing = () => path.join(dir, 'no-such-dso.json');
  const file = (content: string, name = 'dso.json'): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, content);
    return f;
  };
  /** A minimal valid token-method environment. */
  const base = { VAULT_ADDR: 'https://vault:8200', VAULT_TOKEN_FILE: '/etc/dso/token' };
  const problemsFor = (env: NodeJS.ProcessEnv, configFile = missing()) => loadSettings(env, configFile).problems;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dso-unit-settings-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe('templates in settings', () => {
    it('names an unknown template in DSO_ALLOWED_PATHS or DSO_PATH_TEMPLATE, which would otherwise allow nothing', () => {
      const problems = problemsFor({
        ...base,
        DSO_ALLOWED_PATHS: 'secret/data/{stak}/*',
        DSO_PATH_TEMPLATE: 'secret/data/{servce}',
      });
      expect(problems.join('\n'))
        .to.contain('DSO_ALLOWED_PATHS uses an unknown template')
        .and.contain('DSO_PATH_TEMPLATE uses an unknown template');
      expect(problems.join('\n')).not.to.contain('stak');
      expect(problemsFor({ ...base, DSO_ALLOWED_PATHS: 'secret/data/{stack}/*' })).to.deep.equal([]);
    });
  });

  describe('defaults', () => {
    it('has the documented defaults', () => {
      const { settings, problems } = loadSettings(base, missing());
      expect(problems).to.deep.equal([]);
      expect(settings).to.deep.include({
        vaultAddresses: ['https://vault:8200'],
        authMethod: 'token',
        authMount: 'token',
        timeoutMs: 10_000,
        allowedPaths: [],
        rotate: false,
        rotateIntervalMs: 60_000,
        logLevel: 'info',
        socket: DEFAULT_SOCKET,
        dockerSocket: '/var/run/docker.sock',
        secretIdWrapped: false,
      });
      expect(settings.socket).to.equal('/run/docker/plugins/dso.sock');
      expect(settings.tls.skipVerify).to.equal(false);
      expect(settings.pathTemplate).to.equal(undefined);
      expect(settings.namespace).to.equal(undefined);
    });

    it('reports a missing VAULT_ADDR and, for the default token method, a missing VAULT_TOKEN_FILE', () => {
      const problems = problemsFor({});
      expect(problems.some((p) => p.startsWith('VAULT_ADDR is not set'))).to.equal(true);
      expect(problems.some((p) => p.startsWith('VAULT_TOKEN_FILE is not set'))).to.equal(true);
    });

    it('ignores environment variables that are not settings', () => {
      expect(problemsFor({ ...base, PATH: '/bin', HOME: '/root', VAULT_TOKEN: 'x' })).to.deep.equal([]);
    });

    it('does not complain when the config file does not exist', () => {
      expect(problemsFor(base, path.join(dir, 'absent', 'dso.json'))).to.deep.equal([]);
    });
  });

  describe('sources', () => {
    it('reads settings from the config file', () => {
      const f = file(
        JSON.stringify({ VAULT_ADDR: 'https://from-file:8200', VAULT_TOKEN_FILE: '/etc/dso/token', DSO_TIMEOUT: '5s' }),
      );
      const { settings, problems } = loadSettings({}, f);
      expect(problems).to.deep.equal([]);
      expect(settings.vaultAddresses).to.deep.equal(['https://from-file:8200']);
      expect(settings.timeoutMs).to.equal(5000);
    });

    it('lets the environment override the file', () => {
      const f = file(JSON.stringify({ VAULT_ADDR: 'https://from-file:8200', DSO_TIMEOUT: '5s' }));
      const { settings } = loadSettings({ ...base, VAULT_ADDR: 'https://from-env:8200' }, f);
      expect(settings.vaultAddresses).to.deep.equal(['https://from-env:8200']);
      expect(settings.timeoutMs).to.equal(5000);
    });

    it('treats an empty environment value as unset, so the file value stays', () => {
      const f = file(JSON.stringify({ VAULT_ADDR: 'https://from-file:8200', DSO_LOG_LEVEL: 'debug' }));
      const { settings, problems } = loadSettings(
        { VAULT_TOKEN_FILE: '/etc/dso/token', VAULT_ADDR: '', DSO_LOG_LEVEL: '' },
        f,
      );
      expect(problems).to.deep.equal([]);
      expect(settings.vaultAddresses).to.deep.equal(['https://from-file:8200']);
      expect(settings.logLevel).to.equal('debug');
    });

    it('treats an empty environment value as unset when there is no file either (plugin env defaults)', () => {
      const { settings, problems } = loadSettings(
        { ...base, DSO_TIMEOUT: '', VAULT_AUTH_METHOD: '', DSO_ALLOWED_PATHS: '' },
        missing(),
      );
      expect(problems).to.deep.equal([]);
      expect(settings.timeoutMs).to.equal(10_000);
      expect(settings.authMethod).to.equal('token');
    });

    it('finds the file named by DSO_CONFIG', () => {
      const f = file(JSON.stringify({ DSO_PATH_TEMPLATE: 'secret/data/{stack}/{secret}' }), 'via-env.json');
      const { settings } = loadSettings({ ...base, DSO_CONFIG: f });
      expect(settings.pathTemplate).to.equal('secret/data/{stack}/{secret}');
    });

    it('accepts numbers, booleans and lists in the file', () => {
      const f = file(
        JSON.stringify({
          DSO_TIMEOUT: 5,
          VAULT_SKIP_VERIFY: true,
          DSO_ALLOWED_PATHS: ['a/*', 'b/+'],
          VAULT_NAMESPACE: null,
        }),
      );
      const { settings, problems } = loadSettings(base, f);
      expect(problems).to.deep.equal([]);
      expect(settings.timeoutMs).to.equal(5000);
      expect(settings.tls.skipVerify).to.equal(true);
      expect(settings.allowedPaths).to.deep.equal(['a/*', 'b/+']);
      expect(settings.namespace).to.equal(undefined);
    });

    it('reports an unknown key in the file, naming it', () => {
      const f = file(JSON.stringify({ VAULT_ADDRESS: 'https://vault:8200' }));
      const problems = problemsFor(base, f);
      expect(problems.some((p) => p.includes(f) && p.includes('unknown setting VAULT_ADDRESS'))).to.equal(true);
    });

    it('reports a file that is not valid JSON, without quoting its content', () => {
      const f = file(`{"VAULT_ROLE_ID": "${CANARY}",`);
      const problems = problemsFor(base, f);
      expect(problems.some((p) => p.includes(f) && p.includes('not valid JSON'))).to.equal(true);
      expect(problems.join('\n')).to.not.include(CANARY);
    });

    it('reports a file that holds JSON but not an object', () => {
      const problems = problemsFor(base, file('["VAULT_ADDR"]'));
      expect(problems.some((p) => p.includes('must hold a JSON object'))).to.equal(true);
    });

    it('reports a config path that cannot be read', () => {
      const problems = problemsFor(base, dir);
      expect(problems.some((p) => p.includes(dir) && p.includes('cannot be read'))).to.equal(true);
    });

    it('reports a value of the wrong type in the file', () => {
      const problems = problemsFor(base, file(JSON.stringify({ DSO_LOG_LEVEL: { level: 'debug' } })));
      expect(problems.some((p) => p.startsWith('DSO_LOG_LEVEL is invalid'))).to.equal(true);
    });
  });

  describe('checks of single settings', () => {
    it('refuses an unknown VAULT_AUTH_METHOD, naming the setting and the choices but not the value', () => {
      const problems = problemsFor({ ...base, VAULT_AUTH_METHOD: `userpass-${CANARY}` });
      const problem = problems.find((p) => p.startsWith('VAULT_AUTH_METHOD is invalid'));
      expect(problem).to.be.a('string');
      expect(problem).to.include('token, approle, jwt, cert');
      expect(problems.join('\n')).to.not.include(CANARY);
    });

    for (const method of ['token', 'approle', 'jwt', 'cert']) {
      it(`accepts VAULT_AUTH_METHOD=${method} and defaults the mount to its name`, () => {
        const { settings, problems } = loadSettings({ ...base, VAULT_AUTH_METHOD: method }, missing());
        expect(problems.some((p) => p.startsWith('VAULT_AUTH_METHOD'))).to.equal(false);
        expect(settings.authMethod).to.equal(method);
        expect(settings.authMount).to.equal(method);
      });
    }

    it('trims slashes from VAULT_AUTH_MOUNT', () => {
      expect(loadSettings({ ...base, VAULT_AUTH_MOUNT: '/team/approle/' }, missing()).settings.authMount).to.equal(
        'team/approle',
      );
    });

    it('reads DSO_TIMEOUT=2500ms as 2.5 s', () => {
      const { settings, problems } = loadSettings({ ...base, DSO_TIMEOUT: '2500ms' }, missing());
      expect(problems).to.deep.equal([]);
      expect(settings.timeoutMs).to.equal(2500);
    });

    it('accepts DSO_TIMEOUT=29s', () => {
      expect(loadSettings({ ...base, DSO_TIMEOUT: '29s' }, missing()).settings.timeoutMs).to.equal(29_000);
    });

    for (const bad of ['30s', '30000ms', '1m', '0', '0s', 'soon', '-5s']) {
      it(`refuses DSO_TIMEOUT=${bad} (a duration under 30s) and keeps the default`, () => {
        const { settings, problems } = loadSettings({ ...base, DSO_TIMEOUT: bad }, missing());
        expect(problems.filter((p) => p.startsWith('DSO_TIMEOUT is invalid'))).to.have.length(1);
        expect(problems.join('\n')).to.match(/under 30s/);
        expect(settings.timeoutMs).to.equal(10_000);
      });
    }

    it('refuses a VAULT_ADDR that is not an http(s) URL, naming it without echoing it', () => {
      const problems = problemsFor({ ...base, VAULT_ADDR: `vault-${CANARY}:8200` });
      expect(problems.some((p) => p.startsWith('VAULT_ADDR is invalid'))).to.equal(true);
      expect(problems.join('\n')).to.not.include(CANARY);
    });

    it('reports an invalid VAULT_ADDR once, as invalid, not also as unset', () => {
      const problems = problemsFor({ ...base, VAULT_ADDR: 'vault:8200' });
      expect(problems.filter((p) => p.startsWith('VAULT_ADDR'))).to.have.length(1);
    });

    it('never echoes any invalid value in the problems', () => {
      const env = {
        VAULT_ADDR: `ftp://${CANARY}`,
        VAULT_ROLE_ID: `role ${CANARY}`,
        VAULT_AUTH_METHOD: 'approle',
        VAULT_SECRET_ID_FILE: `relative/${CANARY}`,
        VAULT_NAMESPACE: `ns ${CANARY}`,
        DSO_TIMEOUT: `${CANARY}s`,
        DSO_LOG_LEVEL: CANARY,
        DSO_SOCKET: CANARY,
        VAULT_TLS_SERVER_NAME: `${CANARY}/x`,
      };
      const problems = problemsFor(env);
      for (const name of [
        'VAULT_ADDR',
        'VAULT_ROLE_ID',
        'VAULT_SECRET_ID_FILE',
        'VAULT_NAMESPACE',
        'DSO_TIMEOUT',
        'DSO_LOG_LEVEL',
        'DSO_SOCKET',
        'VAULT_TLS_SERVER_NAME',
      ]) {
        expect(
          problems.some((p) => p.startsWith(`${name} is invalid`)),
          name,
        ).to.equal(true);
      }
      expect(problems.join('\n')).to.not.include(CANARY);
    });

    it('requires absolute paths for credential files', () => {
      expect(
        problemsFor({ ...base, VAULT_TOKEN_FILE: 'etc/dso/token' }).some((p) =>
          p.startsWith('VAULT_TOKEN_FILE is invalid'),
        ),
      ).to.equal(true);
    });

    it('splits comma lists and trims their items', () => {
      const { settings, problems } = loadSettings(
        {
          ...base,
          VAULT_ADDR: ' https://vault-1:8200 , https://vault-2:8200/ ,http://vault-3:8200',
          DSO_ALLOWED_PATHS: ' secret/data/{stack}/* ,  database/creds/+ ',
        },
        missing(),
      );
      expect(problems).to.deep.equal([]);
      expect(settings.vaultAddresses).to.deep.equal([
        'https://vault-1:8200',
        'https://vault-2:8200',
        'http://vault-3:8200',
      ]);
      expect(settings.allowedPaths).to.deep.equal(['secret/data/{stack}/*', 'database/creds/+']);
    });

    it('reads DSO_ALLOWED_WRITES: PATTERN?param,param entries separated by ";" (also as a list in dso.json)', () => {
      const { settings, problems } = loadSettings(
        { ...base, DSO_ALLOWED_WRITES: ' transit/encrypt/app?plaintext,context ; /pki/issue/*?not_after; ' },
        missing(),
      );
      expect(problems).to.deep.equal([]);
      expect(settings.allowedWrites).to.deep.equal([
        { pattern: 'transit/encrypt/app', params: ['plaintext', 'context'] },
        { pattern: 'pki/issue/*', params: ['not_after'] },
      ]);
      expect(describeSettings(settings).allowedWrites).to.deep.equal([
        'transit/encrypt/app?plaintext,context',
        'pki/issue/*?not_after',
      ]);
      const fromFile = loadSettings(
        base,
        file(JSON.stringify({ DSO_ALLOWED_WRITES: ['transit/encrypt/app?plaintext,context', 'x/y?a'] }), 'writes.json'),
      );
      expect(fromFile.problems).to.deep.equal([]);
      expect(fromFile.settings.allowedWrites).to.have.length(2);
      expect(loadSettings(base, missing()).settings.allowedWrites).to.deep.equal([]);
    });

    for (const bad of [
      'transit/encrypt/app',
      'transit/encrypt/app?',
      'a?b c',
      'a?b;c',
      '?plaintext',
      'a?b,',
      'a?b?c',
      `a?${CANARY}&x`,
    ]) {
      it(`refuses DSO_ALLOWED_WRITES=${JSON.stringify(bad)}, naming the setting and its syntax, never the value`, () => {
        const { settings, problems } = loadSettings({ ...base, DSO_ALLOWED_WRITES: bad }, missing());
        expect(problems).to.have.length(1);
        expect(problems[0]).to.match(/^DSO_ALLOWED_WRITES is invalid: it must be PATTERN\?param/);
        expect(problems[0]).not.to.contain(CANARY);
        expect(settings.allowedWrites).to.deep.equal([]);
      });
    }

    it('names an unknown template in DSO_ALLOWED_WRITES', () => {
      expect(problemsFor({ ...base, DSO_ALLOWED_WRITES: 'transit/encrypt/{stak}?plaintext' }).join('\n')).to.contain(
        'DSO_ALLOWED_WRITES uses an unknown template',
      );
    });

    it('skips TLS verification only for the exact value true', () => {
      expect(loadSettings({ ...base, VAULT_SKIP_VERIFY: 'true' }, missing()).settings.tls.skipVerify).to.equal(true);
      for (const other of ['1', 'yes', 'TRUE', 'True', 'false', ' true']) {
        expect(loadSettings({ ...base, VAULT_SKIP_VERIFY: other }, missing()).settings.tls.skipVerify, other).to.equal(
          false,
        );
      }
    });

    it('reads DSO_ROTATE and DSO_ROTATE_INTERVAL', () => {
      const { settings } = loadSettings({ ...base, DSO_ROTATE: 'true', DSO_ROTATE_INTERVAL: '2m' }, missing());
      expect(settings.rotate).to.equal(true);
      expect(settings.rotateIntervalMs).to.equal(120_000);
    });
  });

  describe('combination checks per auth method', () => {
    const addr = { VAULT_ADDR: 'https://vault:8200' };

    it('token: needs VAULT_TOKEN_FILE', () => {
      expect(problemsFor({ ...addr, VAULT_AUTH_METHOD: 'token' })).to.deep.equal([
        'VAULT_TOKEN_FILE is not set: the token method reads the token from this file, e.g. /etc/dso/token',
      ]);
    });

    it('approle: is satisfied by VAULT_ROLE_ID and VAULT_SECRET_ID_FILE', () => {
      expect(
        problemsFor({
          ...addr,
          VAULT_AUTH_METHOD: 'approle',
          VAULT_ROLE_ID: 'r',
          VAULT_SECRET_ID_FILE: '/etc/dso/secret-id',
        }),
      ).to.deep.equal([]);
    });

    it('approle: is satisfied by VAULT_ROLE_ID_FILE instead of VAULT_ROLE_ID', () => {
      expect(
        problemsFor({
          ...addr,
          VAULT_AUTH_METHOD: 'approle',
          VAULT_ROLE_ID_FILE: '/etc/dso/role-id',
          VAULT_SECRET_ID_FILE: '/etc/dso/secret-id',
        }),
      ).to.deep.equal([]);
    });

    it('approle: needs a role id and a secret id file', () => {
      const problems = problemsFor({ ...addr, VAULT_AUTH_METHOD: 'approle' });
      expect(problems.some((p) => p.includes('VAULT_ROLE_ID or VAULT_ROLE_ID_FILE must be set'))).to.equal(true);
      expect(problems.some((p) => p.startsWith('VAULT_SECRET_ID_FILE is not set'))).to.equal(true);
    });

    it('approle: refuses both VAULT_ROLE_ID and VAULT_ROLE_ID_FILE', () => {
      const problems = problemsFor({
        ...addr,
        VAULT_AUTH_METHOD: 'approle',
        VAULT_ROLE_ID: 'r',
        VAULT_ROLE_ID_FILE: '/etc/dso/role-id',
        VAULT_SECRET_ID_FILE: '/etc/dso/s',
      });
      expect(problems).to.deep.equal(['set only one of VAULT_ROLE_ID and VAULT_ROLE_ID_FILE']);
    });

    it('approle: reads VAULT_SECRET_ID_WRAPPED', () => {
      const { settings } = loadSettings(
        {
          ...addr,
          VAULT_AUTH_METHOD: 'approle',
          VAULT_ROLE_ID: 'r',
          VAULT_SECRET_ID_FILE: '/etc/dso/s',
          VAULT_SECRET_ID_WRAPPED: 'true',
        },
        missing(),
      );
      expect(settings.secretIdWrapped).to.equal(true);
    });

    it('jwt: needs VAULT_JWT_FILE and VAULT_JWT_ROLE', () => {
      const problems = problemsFor({ ...addr, VAULT_AUTH_METHOD: 'jwt' });
      expect(problems.some((p) => p.startsWith('VAULT_JWT_FILE is not set'))).to.equal(true);
      expect(problems.some((p) => p.startsWith('VAULT_JWT_ROLE is not set'))).to.equal(true);
      expect(
        problemsFor({ ...addr, VAULT_AUTH_METHOD: 'jwt', VAULT_JWT_FILE: '/etc/dso/jwt', VAULT_JWT_ROLE: 'web' }),
      ).to.deep.equal([]);
    });

    it('cert: needs the client certificate and key', () => {
      expect(
        problemsFor({ ...addr, VAULT_AUTH_METHOD: 'cert' }).some((p) =>
          p.includes('VAULT_CLIENT_CERT and VAULT_CLIENT_KEY must be set for VAULT_AUTH_METHOD=cert'),
        ),
      ).to.equal(true);
      expect(
        problemsFor({
          ...addr,
          VAULT_AUTH_METHOD: 'cert',
          VAULT_CLIENT_CERT: '/etc/dso/c.pem',
          VAULT_CLIENT_KEY: '/etc/dso/k.pem',
        }),
      ).to.deep.equal([]);
    });

    it('needs VAULT_CLIENT_CERT and VAULT_CLIENT_KEY together for any method', () => {
      expect(problemsFor({ ...base, VAULT_CLIENT_CERT: '/etc/dso/c.pem' })).to.deep.equal([
        'VAULT_CLIENT_CERT and VAULT_CLIENT_KEY must be set together',
      ]);
    });
  });

  describe('describeSettings', () => {
    it('shows what may be shown and no credential', () => {
      const secretIdFile = path.join(dir, 'secret-id');
      fs.writeFileSync(secretIdFile, `secret-id-${CANARY}`);
      const { settings, problems } = loadSettings(
        {
          VAULT_ADDR: 'https://vault:8200',
          VAULT_AUTH_METHOD: 'approle',
          VAULT_ROLE_ID: `role-id-${CANARY}`,
          VAULT_SECRET_ID_FILE: secretIdFile,
          DSO_ALLOWED_PATHS: 'secret/data/*',
        },
        missing(),
      );
      expect(problems).to.deep.equal([]);
      const described = describeSettings(settings);
      expect(described).to.deep.include({
        vaultAddresses: ['https://vault:8200'],
        authMethod: 'approle',
        authMount: 'approle',
        allowedPaths: ['secret/data/*'],
        tlsSkipVerify: false,
      });
      const text = JSON.stringify(described);
      expect(text).to.not.include(CANARY);
      expect(text).to.not.include('role-id');
    });
  });
});
