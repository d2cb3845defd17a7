// Property: whatever bytes reach the plugin socket as a GetSecret, the real Express app
// (createApp) answers every one, in time, with a well-formed reply, and never crashes.
// The driver is a fake that runs the real Resolver (labels, templates, DSO_ALLOWED_PATHS)
// and then answers, fails, fails unexpectedly, or answers after the deadline.
import { expect } from 'chai';
import fc from 'fast-check';
import { gzipSync, deflateSync } from 'node:zlib';
import { DsoError } from '../../src/errors';
import { silentLogger } from '../../src/log';
import { createApp, MAX_BODY_BYTES, PLUGIN_CONTENT_TYPE } from '../../src/plugin/app';
import type { GetSecretRequest, SecretDriver, SecretResult } from '../../src/plugin/protocol';
import { PathPolicy } from '../../src/resolve/policy';
import { LABELS } from '../../src/resolve/labels';
import { Resolver, STACK_LABEL } from '../../src/resolve/resolver';
import { StatusStore } from '../../src/status/store';
import { contextValue, post, referenceText, RUNS, Served, serveOnSocket, watchProcess } from './support';

const TIMEOUT_MS = 60; // DSO_TIMEOUT of the app under test: late drivers cost little
const REPLY_LIMIT_MS = 5_000; // a reply later than this counts as a hang
const CANARY = 'getsecret-property-canary-5d1e77';
const INTERNAL = 'internal error (see the plugin log)';

type Mode = 'resolve' | 'throw-plain' | 'throw-dso' | 'late-value' | 'late-error' | 'never' | 'sync-throw';

/** The fake driver: what it does for the next request is set by the property. */
class ScriptedDriver implements SecretDriver {
  mode: Mode = 'resolve';
  calls = 0;
  /** Requests the app let through with a field of the wrong type (must stay empty). */
  readonly illTyped: string[] = [];
  private readonly resolver = new Resolver(
    new PathPolicy(['secret/data/{stack}/*', 'database/creds/+', 'secret/data/shared/*']),
    'secret/data/{stack}/{secret}',
  );

  getSecret(request: GetSecretRequest): Promise<SecretResult> {
    this.calls++;
    this.checkTypes(request);
    switch (this.mode) {
      case 'resolve': {
        const plan = this.resolver.plan(request);
        return Promise.resolve({
          value: Buffer.from(`value-of:${plan.path}`),
          doNotReuse: plan.reuse === undefined ? true : !plan.reuse,
          source: { path: plan.path },
        });
      }
      case 'throw-plain':
        return Promise.reject(new TypeError(`cannot read ${CANARY} of undefined`));
      case 'sync-throw':
        throw new RangeError(`synchronous ${CANARY}`);
      case 'throw-dso':
        return Promise.reject(new DsoError('ERR_VAULT_DENIED', 'permission denied reading secret/data/x'));
      case 'late-value':
        return new Promise((resolve) =>
          setTimeout(() => resolve({ value: Buffer.from('late'), doNotReuse: false, source: {} }), TIMEOUT_MS + 20),
        );
      case 'late-error':
        return new Promise((_, reject) => setTimeout(() => reject(new Error(`late ${CANARY}`)), TIMEOUT_MS + 20));
      case 'never':
        return new Promise(() => undefined);
    }
  }

  private checkTypes(request: GetSecretRequest): void {
    const r = request as Record<string, unknown>;
    if (typeof r !== 'object' || r === null || Array.isArray(r)) return void this.illTyped.push('body');
    for (const name of [
      'SecretName',
      'ServiceID',
      'ServiceName',
      'ServiceHostname',
      'TaskID',
      'TaskName',
      'TaskImage',
      'NodeID',
    ]) {
      if (r[name] !== undefined && r[name] !== null && typeof r[name] !== 'string') this.illTyped.push(name);
    }
    for (const name of ['SecretLabels', 'ServiceLabels']) {
      const map = r[name];
      if (map === undefined || map === null) continue;
      if (typeof map !== 'object' || Array.isArray(map)) this.illTyped.push(name);
      else for (const v of Object.values(map as object)) if (typeof v !== 'string') this.illTyped.push(`${name} value`);
    }
    const spec = r.ServiceEndpointSpec;
    if (spec !== undefined && spec !== null && (typeof spec !== 'object' || Array.isArray(spec)))
      this.illTyped.push('ServiceEndpointSpec');
  }
}

// ----- bodies ------------------------------------------------------------------------------

const FIELDS = [
  'SecretName',
  'SecretLabels',
  'ServiceID',
  'ServiceName',
  'ServiceLabels',
  'ServiceHostname',
  'TaskID',
  'TaskName',
  'TaskImage',
  'NodeID',
  'ServiceEndpointSpec',
];

const weirdString = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.constantFrom(
    '',
    '\u0000',
    '\ud800',
    '\udc00x',
    '\u202e',
    '../..',
    '%2e%2e',
    '{stack}',
    'é',
    '😀',
    '\r\n',
    '__proto__',
  ),
);

/** Any JSON value, of any type, where a field is expected. */
const anyValue = fc.oneof(
  { weight: 4, arbitrary: weirdString },
  { weight: 1, arbitrary: fc.constantFrom(null, true, false, 0, -1, 1e308, 3.5) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.array(weirdString, { maxLength: 3 }) },
);

const labelKey = fc.oneof(
  {
    weight: 3,
    // Every label the driver reads, as its parser lists them.
    arbitrary: fc.constantFrom(...LABELS),
  },
  { weight: 1, arbitrary: fc.constantFrom('dso.nope', STACK_LABEL, '__proto__', 'constructor', '', 'a'.repeat(300)) },
  { weight: 1, arbitrary: weirdString },
);

const labelMap = fc.dictionary(
  labelKey,
  fc.oneof(
    {
      weight: 6,
      arbitrary: fc.oneof(referenceText, weirdString, fc.constantFrom('1', 'json', 'raw', 'true', 'false')),
    },
    { weight: 1, arbitrary: anyValue },
  ),
  { maxKeys: 5, noNullPrototype: true },
);

/** Mostly Docker-shaped requests, with fields of random type sprinkled in. */
const dockerLike = fc.record(
  {
    SecretName: fc.oneof({ weight: 5, arbitrary: contextValue(true) }, { weight: 1, arbitrary: anyValue }),
    SecretLabels: fc.oneof({ weight: 8, arbitrary: labelMap }, { weight: 1, arbitrary: anyValue }),
    ServiceID: fc.oneof({ weight: 5, arbitrary: fc.string({ maxLength: 8 }) }, { weight: 1, arbitrary: anyValue }),
    ServiceName: fc.oneof({ weight: 5, arbitrary: contextValue(true) }, { weight: 1, arbitrary: anyValue }),
    ServiceLabels: fc.oneof(
      { weight: 5, arbitrary: contextValue(true).map((s) => ({ [STACK_LABEL]: s })) },
      { weight: 1, arbitrary: fc.constant(null) },
      { weight: 1, arbitrary: anyValue },
    ),
    ServiceHostname: anyValue,
    TaskID: fc.string({ maxLength: 8 }),
    TaskName: fc.oneof({ weight: 5, arbitrary: contextValue(true) }, { weight: 1, arbitrary: anyValue }),
    TaskImage: anyValue,
    NodeID: contextValue(true),
    ServiceEndpointSpec: fc.oneof(fc.constant(null), fc.constant({ Mode: 'vip' }), anyValue),
    Extra: anyValue,
  },
  { requiredKeys: [], noNullPrototype: true },
);

/** A Docker-shaped request with one string grown large (labels, names), maybe past the body limit. */
const huge = fc
  .tuple(
    fc.constantFrom(...FIELDS),
    fc.constantFrom(2_000, 64_000, 600_000, MAX_BODY_BYTES - 200, MAX_BODY_BYTES + 10, 3 * MAX_BODY_BYTES),
    fc.constantFrom('x', 'é', '\u0000', '😀', '/..'),
  )
  .map(([field, size, unit]) => {
    const big = unit.repeat(Math.ceil(size / Buffer.byteLength(unit)));
    const body: Record<string, unknown> = { SecretName: 's', SecretLabels: { 'dso.ref': 'dso://secret/data/a/b#c' } };
    if (field === 'SecretLabels')
      body.SecretLabels = { 'dso.ref': `dso://secret/data/${big}`, [big.slice(0, 1000)]: big };
    else body[field] = big;
    return JSON.stringify(body);
  });

const deep = fc
  .tuple(fc.integer({ min: 1, max: 50_000 }), fc.constantFrom('array', 'object', 'labels', 'spec'))
  .map(([depth, where]) => {
    const open = where === 'array' ? '[' : '{"a":';
    const close = where === 'array' ? ']' : '}';
    const nest = open.repeat(depth) + '1' + close.repeat(depth);
    if (where === 'labels') return `{"SecretLabels":{"dso.ref":${nest}}}`;
    if (where === 'spec') return `{"SecretLabels":{"dso.ref":"dso://secret/data/a/b"},"ServiceEndpointSpec":${nest}}`;
    return nest;
  });

/** Valid JSON text, then damaged: truncated, a byte changed, a BOM, duplicate keys. */
const damaged = fc
  .tuple(
    dockerLike,
    fc.nat(),
    fc.integer({ min: 0, max: 255 }),
    fc.constantFrom('truncate', 'flip', 'bom', 'dup', 'trailing', 'utf16', 'nul'),
  )
  .map(([body, at, byte, how]) => {
    const text = JSON.stringify(body);
    const i = text.length === 0 ? 0 : at % text.length;
    switch (how) {
      case 'truncate':
        return text.slice(0, i);
      case 'flip':
        return Buffer.concat([Buffer.from(text.slice(0, i)), Buffer.from([byte]), Buffer.from(text.slice(i + 1))]);
      case 'bom':
        return `\ufeff${text}`;
      case 'dup':
        return `{"SecretLabels":{"dso.ref":"dso://secret/data/a/b"},${text.slice(1)}`.replace(/,}$/, '}');
      case 'trailing':
        return `${text} ${text}`;
      case 'utf16':
        return Buffer.from(text, 'utf16le');
      case 'nul':
        return `${text}\u0000`;
    }
  });

/** What Docker really sends for a secret the fake's policy allows (or, with another stack, refuses). */
const valid = fc
  .tuple(
    fc.constantFrom('shop', 'blog', 'a.b', 'x-1', 'st+ck'),
    fc.constantFrom('shop', 'blog', '{stack}', 'shared'),
    fc.constantFrom('db', 'api/key', 'x'),
    fc.constantFrom('', '#password', '#user'),
    fc.constantFrom('ref', 'path', 'template'),
  )
  .map(([stack, where, name, field, how]) => {
    const path = `secret/data/${where}/${name}`;
    const labels: Record<string, string> =
      how === 'ref'
        ? { 'dso.ref': `dso://${path}${field}` }
        : how === 'path'
          ? { 'dso.path': path, ...(field ? { 'dso.field': field.slice(1) } : {}) }
          : {};
    return JSON.stringify({
      SecretName: 'db_password',
      SecretLabels: labels,
      ServiceID: 'svc1',
      ServiceName: `${stack}_web`,
      ServiceLabels: { [STACK_LABEL]: stack },
      TaskID: 't1',
      TaskName: `${stack}_web.1.t1`,
      NodeID: 'node1',
      ServiceEndpointSpec: { Mode: 'vip' },
    });
  });

const tagged = (kind: string, arb: fc.Arbitrary<string | Buffer>) => arb.map((payload) => ({ kind, payload }));

const body = fc.oneof(
  { weight: 10, arbitrary: tagged('valid', valid) },
  {
    weight: 30,
    arbitrary: tagged(
      'docker-like',
      dockerLike.map((b) => JSON.stringify(b)),
    ),
  },
  {
    weight: 8,
    arbitrary: tagged(
      'json',
      fc.jsonValue().map((v) => JSON.stringify(v) ?? 'null'),
    ),
  },
  { weight: 8, arbitrary: tagged('damaged', damaged) },
  {
    weight: 6,
    arbitrary: tagged(
      'bytes',
      fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    ),
  },
  {
    weight: 3,
    arbitrary: tagged(
      'constant',
      fc.constantFrom(
        '',
        ' ',
        '\n',
        'null',
        '[]',
        '{}',
        '""',
        '0',
        'true',
        '{"SecretLabels":[]}',
        '{"SecretLabels":{"dso.ref":null}}',
        '{"__proto__":{"SecretLabels":1}}',
      ),
    ),
  },
  { weight: 2, arbitrary: tagged('deep', deep) },
  { weight: 1, arbitrary: tagged('huge', huge) },
);

const headersArb = fc.record({
  contentType: fc.constantFrom(
    undefined,
    undefined,
    undefined,
    'application/json',
    'text/plain; charset=utf-16',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/json; charset=latin1',
    'x/y',
  ),
  encoding: fc.constantFrom<string | undefined>(
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
    'gzip',
    'deflate',
    'identity',
    'br',
    'bogus',
    'gzip, gzip',
  ),
  chunked: fc.boolean(),
});

const modeArb = fc.oneof(
  { weight: 200, arbitrary: fc.constant<Mode>('resolve') },
  { weight: 4, arbitrary: fc.constantFrom<Mode>('throw-plain', 'throw-dso', 'sync-throw') },
  { weight: 1, arbitrary: fc.constantFrom<Mode>('late-value', 'late-error', 'never') },
);

// ----- the property -----------------------------------------------------------------------

describe('property: GetSecret bodies through the real Express app', function () {
  this.timeout(120_000);
  let served: Served;
  const driver = new ScriptedDriver();

  before(async () => {
    const app = createApp({ driver, logger: silentLogger(), status: new StatusStore(), timeoutMs: TIMEOUT_MS });
    served = await serveOnSocket(app);
  });

  after(async () => served?.close());

  it('answers every body, in time, with well-formed JSON: 200 only with a Value, otherwise 4xx/5xx with an Err', async () => {
    const watch = watchProcess();
    const stats = { ok: 0, client: 0, server: 0, tooLarge: 0, driverCalls: 0 };
    const timing: Record<string, { n: number; ms: number }> = {};
    try {
      await fc.assert(
        fc.asyncProperty(body, headersArb, modeArb, async ({ kind, payload: raw }, h, mode) => {
          driver.mode = mode;
          const callsBefore = driver.calls;
          let payload = Buffer.isBuffer(raw) ? raw : Buffer.from(raw, 'utf8');
          const headers: Record<string, string | number> = {};
          if (h.contentType) headers['Content-Type'] = h.contentType;
          if (h.encoding) {
            headers['Content-Encoding'] = h.encoding;
            if (h.encoding === 'gzip') payload = gzipSync(payload);
            if (h.encoding === 'deflate') payload = deflateSync(payload);
          }
          if (h.chunked) headers['Transfer-Encoding'] = 'chunked';
          else headers['Content-Length'] = payload.length;

          const reply = await post(served, '/SecretProvider.GetSecret', payload, headers, REPLY_LIMIT_MS);
          const called = driver.calls > callsBefore;
          const seen = (timing[`${kind}/${called ? mode : 'refused before the driver'}`] ??= { n: 0, ms: 0 });
          seen.n++;
          seen.ms += reply.ms;
          expect(reply.error, 'a reply arrived').to.equal(undefined);
          // Within the deadline (plus slack for a busy 2-core machine) when the driver was slow.
          if (called && mode !== 'resolve') expect(reply.ms).to.be.below(TIMEOUT_MS + 2_000);
          expect(reply.headers['content-type'] ?? '').to.contain(PLUGIN_CONTENT_TYPE);

          let json: { Value?: unknown; Err?: unknown; DoNotReuse?: unknown };
          try {
            json = JSON.parse(reply.text);
          } catch {
            throw new Error(`reply is not JSON: ${reply.text.slice(0, 200)}`);
          }
          expect(json, 'a JSON object').to.be.an('object');
          expect(json.Err, 'Err is a string').to.be.a('string');
          expect(json.DoNotReuse, 'DoNotReuse is a boolean').to.be.a('boolean');
          expect(reply.text, 'no unexpected error text reaches Docker').to.not.contain(CANARY);

          if (reply.status === 200) {
            stats.ok++;
            expect(called, '200 only after the driver answered').to.equal(true);
            expect(json.Value, 'Value on 200').to.be.a('string');
            const value = Buffer.from(json.Value as string, 'base64');
            expect(value.length).to.be.greaterThan(0);
            expect(value.toString('base64')).to.equal(json.Value);
            expect(json.Err).to.equal('');
          } else {
            expect(reply.status).to.be.within(400, 599);
            expect(json.Value, 'no Value with an error').to.equal(undefined);
            expect((json.Err as string).length, 'a non-empty Err').to.be.greaterThan(0);
            if (reply.status === 413) stats.tooLarge++;
            if (reply.status < 500) stats.client++;
            else stats.server++;
            // Bad input is refused as such: only the scripted unexpected failures become internal errors.
            const unexpected = called && (mode === 'throw-plain' || mode === 'sync-throw' || mode === 'late-error');
            if (!unexpected)
              expect(json.Err, 'parsing and planning fail with a DsoError, not an internal error').to.not.equal(
                INTERNAL,
              );
            if (called && mode === 'resolve') expect(reply.status).to.equal(500); // labels/templates/policy: a DsoError from the driver
            if (!called) expect(reply.status, 'refused before the driver: a client error').to.be.within(400, 499);
          }
        }),
        { numRuns: RUNS },
      );
      stats.driverCalls = driver.calls;
    } finally {
      watch.stop();
    }
    if (process.env.DSO_PROPERTY_STATS) console.log(timing); // cases and reply time per kind of body and driver mode
    expect(watch.problems, 'no uncaught exception or unhandled rejection').to.deep.equal([]);
    expect(driver.illTyped, 'the driver only ever sees well-typed requests').to.deep.equal([]);
    // The generators reach every outcome, so the property is not vacuous.
    expect(stats.ok, 'successful replies').to.be.greaterThan(RUNS / 50);
    expect(stats.client, 'client errors').to.be.greaterThan(RUNS / 20);
    expect(stats.server, 'driver errors').to.be.greaterThan(RUNS / 20);
    expect(stats.tooLarge, 'bodies over the limit').to.be.greaterThan(0);

    // And the server still answers afterwards.
    driver.mode = 'resolve';
    const last = await post(
      served,
      '/SecretProvider.GetSecret',
      Buffer.from(
        JSON.stringify({
          SecretName: 'db',
          ServiceLabels: { [STACK_LABEL]: 'shop' },
          SecretLabels: { 'dso.ref': 'dso://secret/data/shop/db#password' },
        }),
      ),
      {},
      REPLY_LIMIT_MS,
    );
    expect(last.status).to.equal(200);
    expect(Buffer.from(JSON.parse(last.text).Value, 'base64').toString()).to.equal('value-of:secret/data/shop/db');
  });
});
