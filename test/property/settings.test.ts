// Property: loadSettings, given any environment and any /etc/dso/dso.json content, never
// throws, never repeats a setting's value in its problems (values may be credentials), and
// always ends with a deadline Docker can live with: 0 < timeoutMs < 30000.
import { expect } from 'chai';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SETTING_NAMES } from '../../src/config/schema';
import { describeSettings, loadSettings } from '../../src/config/settings';
import { RUNS } from './support';

const MARK = 'Kq7Zc4n4ry'; // in every generated value; never in a setting name or the file's path

/** A value for a setting: plausible, hostile or random, always carrying the marker. */
const markedValue = fc
  .tuple(
    fc.oneof(
      fc.constantFrom(
        'https://vault:8200',
        'http://a:1,http://b:2',
        'token',
        'approle',
        'jwt',
        'cert',
        'kerberos',
        '/etc/dso/token',
        'relative/file',
        '10s',
        '29999ms',
        '30s',
        '29.9996s',
        '0.4ms',
        '0',
        '-1s',
        '1e3',
        '1h',
        '9'.repeat(400),
        'true',
        'false',
        'TRUE',
        'debug',
        'trace',
        '127.0.0.1:9464',
        'secret/data/{stack}/*',
        ' ',
        '\n',
        '\u0000',
      ),
      fc.string({ maxLength: 12 }),
      fc.string({ unit: 'binary', maxLength: 12 }),
    ),
    fc.constantFrom('prefix', 'suffix', 'middle', 'alone'),
  )
  .map(([base, where]) => {
    switch (where) {
      case 'prefix':
        return MARK + base;
      case 'suffix':
        return base + MARK;
      case 'middle':
        return base.slice(0, 3) + MARK + base.slice(3);
      default:
        return MARK;
    }
  });

/** A value that is valid for DSO_TIMEOUT's pattern but may be out of range, carrying no marker (numbers cannot). */
const durationText = fc
  .tuple(
    fc.oneof(fc.nat(40_000), fc.double({ min: 0, max: 40, noNaN: true })),
    fc.constantFrom('', 'ms', 's', 'm', 'h', ' s'),
  )
  .map(([n, unit]) => `${n}${unit}`);

const settingName = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...SETTING_NAMES) },
  {
    weight: 1,
    arbitrary: fc.constantFrom('DSO_CONFIG', 'VAULT_TOKEN', 'PATH', 'dso_timeout', '__proto__', 'constructor'),
  },
);

const env = fc.dictionary(
  settingName,
  fc.oneof(
    { weight: 5, arbitrary: markedValue },
    { weight: 1, arbitrary: fc.constant('') },
    { weight: 1, arbitrary: durationText },
  ),
  { maxKeys: 8 },
);

/** dso.json: an object of settings with values of any JSON type, or something that is not an object at all. */
const fileValue = fc.oneof(
  { weight: 6, arbitrary: markedValue },
  { weight: 1, arbitrary: durationText },
  { weight: 1, arbitrary: fc.constantFrom(null, '', 0, 42, true, Infinity) },
  { weight: 1, arbitrary: fc.array(markedValue, { maxLength: 3 }) },
  { weight: 1, arbitrary: markedValue.map((v) => ({ nested: v })) },
);
const fileContent = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .dictionary(
        fc.oneof(
          { weight: 6, arbitrary: settingName },
          { weight: 1, arbitrary: fc.string({ maxLength: 6 }).filter((k) => !k.includes(MARK)) },
        ),
        fileValue,
        { maxKeys: 8 },
      )
      .map((o) => JSON.stringify(o)),
  },
  { weight: 1, arbitrary: markedValue.map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.array(markedValue, { maxLength: 3 }).map((a) => JSON.stringify(a)) },
  { weight: 1, arbitrary: markedValue.map((v) => `{"VAULT_ADDR": "${v}`) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a).toString('latin1') + MARK) },
  { weight: 1, arbitrary: fc.constant(null) }, // no file at all
);

describe('property: settings from env and dso.json', function () {
  this.timeout(120_000);
  let dir: string;

  before(() => {
    // In memory where there is a tmpfs: 10,000 rewrites of a file on a busy disk take seconds.
    const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
    dir = fs.mkdtempSync(path.join(base, 'dso-property-settings-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('never throws, never shows a value in problems, and keeps 0 < timeoutMs < 30000', () => {
    const file = path.join(dir, 'dso.json');
    const absent = path.join(dir, 'absent.json');
    expect(file).to.not.contain(MARK);
    let withProblems = 0;
    fc.assert(
      fc.property(env, fileContent, fc.option(fc.nat(), { nil: undefined }), (generated, content, role) => {
        // A role id of its own, so that finding it in what is shown means it leaked from there.
        const vars = role === undefined ? generated : { ...generated, VAULT_ROLE_ID: `R0le1d-${role}` };
        if (content !== null) fs.writeFileSync(file, content);
        let loaded: ReturnType<typeof loadSettings>;
        try {
          loaded = loadSettings(vars, content === null ? absent : file);
        } catch (err) {
          throw new Error(`loadSettings threw ${(err as Error)?.name}: ${(err as Error)?.message}`);
        }
        const { settings, problems } = loaded;
        expect(problems).to.be.an('array');
        for (const p of problems) {
          if (typeof p !== 'string') throw new Error(`a problem that is not a string: ${String(p)}`);
          if (p.includes(MARK)) throw new Error(`a problem repeats a value: ${p}`);
        }
        if (problems.length) withProblems++;
        expect(settings.timeoutMs).to.be.a('number');
        expect(settings.timeoutMs).to.be.greaterThan(0);
        expect(settings.timeoutMs).to.be.below(30_000);
        expect(Number.isInteger(settings.timeoutMs)).to.equal(true);
        expect(settings.rotateIntervalMs).to.be.greaterThan(0);
        expect(['token', 'approle', 'jwt', 'cert']).to.include(settings.authMethod);
        expect(['error', 'warn', 'info', 'debug']).to.include(settings.logLevel);
        // Only the exact value "true" turns TLS verification off.
        const skip = vars.VAULT_SKIP_VERIFY;
        if (skip !== undefined && skip !== '' && skip !== 'true') expect(settings.tls.skipVerify).to.equal(false);
        // What the status route and `docker dso system info` show holds no credential.
        const shown = JSON.stringify(describeSettings(settings));
        if (role !== undefined) expect(shown).to.not.contain(`R0le1d-${role}`);
      }),
      { numRuns: RUNS },
    );
    expect(withProblems).to.be.greaterThan(RUNS / 2);
  });
});
