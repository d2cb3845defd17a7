// The Express app on the plugin socket, driven with supertest and a fake driver: body
// parsing without Content-Type, validation, reply encoding, deadline, status and logs.
import { expect } from 'chai';
import { once } from 'node:events';
import * as http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import request from 'supertest';
import { DsoError } from '../../src/errors';
import { AppOptions, createApp, MAX_BODY_BYTES, PLUGIN_CONTENT_TYPE } from '../../src/plugin/app';
import type { StatusFacts } from '../../src/plugin/contract';
import {
  checkGetSecretRequest,
  errorReply,
  GetSecretRequest,
  SecretDriver,
  SecretResult,
  valueReply,
} from '../../src/plugin/protocol';
import { StatusStore } from '../../src/status/store';
import { capturingLogger, deferred, sleep } from './helpers';

const VALUE = 'app-canary-secret-value-4c7a20';
const VALUE_B64 = Buffer.from(VALUE).toString('base64');

class FakeDriver implements SecretDriver {
  readonly requests: GetSecretRequest[] = [];
  readonly signals: AbortSignal[] = [];

  constructor(private readonly answer: (request: GetSecretRequest, signal: AbortSignal) => Promise<SecretResult>) {}

  getSecret(request: GetSecretRequest, signal: AbortSignal): Promise<SecretResult> {
    this.requests.push(request);
    this.signals.push(signal);
    return this.answer(request, signal);
  }
}

const ok = (value: Buffer | string = VALUE, doNotReuse = false) =>
  new FakeDriver(async () => ({
    value: Buffer.isBuffer(value) ? value : Buffer.from(value),
    doNotReuse,
    source: { path: 'secret/data/app/db', field: 'password', version: 3 },
  }));

function setup(driver: SecretDriver = ok(), timeoutMs = 5000, extra: Pick<AppOptions, 'describe' | 'testVault'> = {}) {
  const { logger, lines, records } = capturingLogger('debug');
  const status = new StatusStore();
  const app = createApp({ driver, logger, status, timeoutMs, ...extra });
  return { app, status, lines, records };
}

const dockerRequest: GetSecretRequest = {
  SecretName: 'db_password',
  SecretLabels: { 'dso.ref': 'dso://secret/data/app/db#password' },
  ServiceID: 'svc-id-1',
  ServiceName: 'web',
  ServiceLabels: { 'com.docker.stack.namespace': 'shop' },
  ServiceHostname: '',
  TaskID: 'task-id-1',
  TaskName: 'web.1.task-id-1',
  TaskImage: 'busybox:latest',
  NodeID: 'node-1',
  ServiceEndpointSpec: { Mode: 'vip' },
};

/** POSTs a GetSecret the way Docker does: a JSON body and no Content-Type header at all. */
function getSecret(app: Parameters<typeof request>[0], body: unknown = dockerRequest) {
  return request(app)
    .post('/SecretProvider.GetSecret')
    .send(Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)));
}

const reply = (res: { text: string }) => JSON.parse(res.text) as { Value?: string; Err: string; DoNotReuse: boolean };

describe('plugin app (secret-provider protocol over HTTP)', () => {
  describe('reply encoding', () => {
    it('answers 200 with Value = base64 of the value, Err empty and DoNotReuse false', async () => {
      const { app } = setup(ok(VALUE, false));
      const res = await getSecret(app);
      expect(res.status).to.equal(200);
      expect(res.headers['content-type']).to.include(PLUGIN_CONTENT_TYPE);
      expect(reply(res)).to.deep.equal({ Value: VALUE_B64, Err: '', DoNotReuse: false });
    });

    it('passes DoNotReuse true through', async () => {
      const { app } = setup(ok(VALUE, true));
      expect(reply(await getSecret(app)).DoNotReuse).to.equal(true);
    });

    it('encodes binary, non-UTF-8 bytes exactly', async () => {
      const bytes = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0xc3, 0x28, 0x0a, 0x0d, 0x00]);
      const { app } = setup(ok(bytes));
      const value = Buffer.from(reply(await getSecret(app)).Value!, 'base64');
      expect(value.equals(bytes)).to.equal(true);
    });

    it('valueReply and errorReply have the documented shape', () => {
      expect(valueReply({ value: Buffer.from('ab'), doNotReuse: true, source: {} })).to.deep.equal({
        Value: 'YWI=',
        Err: '',
        DoNotReuse: true,
      });
      expect(errorReply('boom')).to.deep.equal({ Err: 'boom', DoNotReuse: false });
    });
  });

  describe('request body', () => {
    it('parses a body sent with no Content-Type header (as Docker sends it)', async () => {
      const driver = ok();
      const { app } = setup(driver);
      const seen: Array<{ has: boolean; value: unknown }> = [];
      const spy = (req: IncomingMessage, res: ServerResponse) => {
        seen.push({
          has: Object.prototype.hasOwnProperty.call(req.headers, 'content-type'),
          value: req.headers['content-type'],
        });
        app(req, res);
      };
      const res = await getSecret(spy);
      expect(seen).to.deep.equal([{ has: false, value: undefined }]);
      expect(res.status).to.equal(200);
      expect(driver.requests).to.deep.equal([dockerRequest]);
    });

    it('parses a body sent with an empty Content-Type header', async () => {
      const driver = ok();
      const { app } = setup(driver);
      const res = await request(app)
        .post('/SecretProvider.GetSecret')
        .set('Content-Type', '')
        .send(Buffer.from(JSON.stringify(dockerRequest)));
      expect(res.status).to.equal(200);
      expect(driver.requests[0]).to.deep.equal(dockerRequest);
    });

    for (const type of [
      'text/plain',
      'application/json',
      'application/vnd.docker.plugins.v1.2+json',
      'application/octet-stream',
    ]) {
      it(`parses a body sent as ${type}`, async () => {
        const driver = ok();
        const { app } = setup(driver);
        const res = await request(app)
          .post('/SecretProvider.GetSecret')
          .set('Content-Type', type)
          .send(JSON.stringify(dockerRequest));
        expect(res.status).to.equal(200);
        expect(driver.requests[0]).to.deep.equal(dockerRequest);
      });
    }

    it('accepts null maps (Go encodes a nil map as null)', async () => {
      const driver = ok();
      const { app } = setup(driver);
      const body = { SecretName: 'x', SecretLabels: null, ServiceLabels: null, ServiceEndpointSpec: null };
      const res = await getSecret(app, body);
      expect(res.status).to.equal(200);
      expect(driver.requests[0]).to.deep.equal(body);
    });

    it('accepts a request where every field is absent', async () => {
      const { app } = setup();
      expect((await getSecret(app, {})).status).to.equal(200);
    });

    it('accepts fields it does not know (newer Docker versions)', async () => {
      const driver = ok();
      const { app } = setup(driver);
      expect((await getSecret(app, { ...dockerRequest, SomethingNew: [1, 2] })).status).to.equal(200);
    });

    const malformed: Array<[string, string, RegExp]> = [
      ['malformed JSON', '{"SecretName": "x",', /not valid JSON/],
      ['an empty body', '', /empty GetSecret request/],
      ['a body of whitespace', '  \n ', /empty GetSecret request/],
      ['a JSON array', '[]', /body must be object/],
      ['JSON null', 'null', /body must be object/],
      [
        'SecretLabels as an array',
        JSON.stringify({ SecretLabels: ['dso.ref=dso://a/b'] }),
        /SecretLabels must be object/,
      ],
      [
        'a label value that is a number',
        JSON.stringify({ SecretLabels: { 'dso.version': 2 } }),
        /SecretLabels\/dso\.version must be string/,
      ],
      ['ServiceLabels as a string', JSON.stringify({ ServiceLabels: 'x' }), /ServiceLabels must be object/],
      ['ServiceName as a number', JSON.stringify({ ServiceName: 7 }), /ServiceName must be string/],
    ];
    for (const [what, body, message] of malformed) {
      it(`answers 400 with Err for ${what}, without calling the driver`, async () => {
        const driver = ok();
        const { app } = setup(driver);
        const res = await getSecret(app, body);
        expect(res.status).to.equal(400);
        const r = reply(res);
        expect(r.Err).to.match(message);
        expect(r).to.not.have.property('Value');
        expect(driver.requests).to.have.length(0);
      });
    }

    it('answers 400 for a POST with no body at all', async () => {
      const { app } = setup();
      const res = await request(app).post('/SecretProvider.GetSecret');
      expect(res.status).to.equal(400);
      expect(reply(res).Err).to.match(/empty/);
    });

    it('accepts a body just under 1 MiB', async () => {
      const { app } = setup();
      const body = JSON.stringify({ ...dockerRequest, Padding: 'p'.repeat(MAX_BODY_BYTES - 2000) });
      expect(body.length).to.be.below(MAX_BODY_BYTES);
      expect((await getSecret(app, body)).status).to.equal(200);
    });

    it('answers 413 with Err for a body over 1 MiB', async () => {
      const driver = ok();
      const { app } = setup(driver);
      const body = JSON.stringify({ ...dockerRequest, Padding: 'p'.repeat(MAX_BODY_BYTES) });
      const res = await getSecret(app, body);
      expect(res.status).to.equal(413);
      expect(reply(res).Err).to.include(String(MAX_BODY_BYTES));
      expect(driver.requests).to.have.length(0);
    });
  });

  describe('GetSecret outside the fast path (served behind Express, the same way)', () => {
    it('serves a GetSecret sent with a query string', async () => {
      const { app } = setup();
      const res = await request(app)
        .post('/SecretProvider.GetSecret?x=1')
        .send(Buffer.from(JSON.stringify(dockerRequest)));
      expect(res.status).to.equal(200);
      expect(reply(res).Value).to.equal(VALUE_B64);
    });

    it('serves a gzip-encoded GetSecret (Content-Encoding: gzip)', async () => {
      const { app } = setup();
      const res = await request(app)
        .post('/SecretProvider.GetSecret')
        .set('Content-Encoding', 'gzip')
        .send(gzipSync(JSON.stringify(dockerRequest)));
      expect(res.status).to.equal(200);
      expect(reply(res).Value).to.equal(VALUE_B64);
    });

    it('answers a malformed body the same on both paths (status, Err, content type)', async () => {
      const { app } = setup();
      const fast = await request(app).post('/SecretProvider.GetSecret').send(Buffer.from('{nope'));
      const routed = await request(app).post('/SecretProvider.GetSecret?via=express').send(Buffer.from('{nope'));
      expect(fast.status).to.equal(400);
      expect(routed.status).to.equal(400);
      expect(fast.text).to.equal(routed.text);
      expect(fast.headers['content-type']).to.equal(routed.headers['content-type']);
      expect(fast.headers['content-type']).to.equal(`${PLUGIN_CONTENT_TYPE}; charset=utf-8`);
    });

    it('serves a body that arrives in parts, with its Content-Length or chunked, once it is whole', async () => {
      const driver = ok();
      const { app } = setup(driver);
      const server = http.createServer(app).listen(0, '127.0.0.1');
      await once(server, 'listening');
      const body = Buffer.from(JSON.stringify(dockerRequest));
      const post = (headers: Record<string, string | number>) =>
        new Promise<{ status: number; text: string }>((resolve, reject) => {
          const { port } = server.address() as AddressInfo;
          const req = http.request(
            { host: '127.0.0.1', port, method: 'POST', path: '/SecretProvider.GetSecret', headers },
            (res) => {
              let text = '';
              res.setEncoding('utf8');
              res.on('data', (part: string) => (text += part));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
            },
          );
          req.on('error', reject);
          req.flushHeaders();
          // The first half alone must not be taken for the body.
          req.write(body.subarray(0, 40));
          setTimeout(() => req.end(body.subarray(40)), 50);
        });
      try {
        const ways: Array<Record<string, string | number>> = [
          { 'Content-Length': body.length },
          { 'Transfer-Encoding': 'chunked' },
        ];
        for (const headers of ways) {
          const res = await post(headers);
          expect(res.status, JSON.stringify(headers)).to.equal(200);
          expect(reply(res).Value).to.equal(VALUE_B64);
        }
        expect(driver.requests).to.have.length(2);
      } finally {
        server.close();
      }
    });

    it('answers 413 for a chunked body over 1 MiB (no Content-Length), without calling the driver', async () => {
      const driver = ok();
      const { app } = setup(driver);
      const server = http.createServer(app).listen(0, '127.0.0.1');
      await once(server, 'listening');
      try {
        const { port } = server.address() as AddressInfo;
        const status = await new Promise<number>((resolve, reject) => {
          const req = http.request(
            {
              host: '127.0.0.1',
              port,
              method: 'POST',
              path: '/SecretProvider.GetSecret',
              headers: { 'Transfer-Encoding': 'chunked' },
            },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          );
          req.on('error', reject);
          const chunk = Buffer.alloc(256 * 1024, 0x20);
          for (let i = 0; i < 5; i++) req.write(chunk);
          req.end();
        });
        expect(status).to.equal(413);
        expect(driver.requests).to.have.length(0);
      } finally {
        server.close();
      }
    });
  });

  describe('routes', () => {
    it('answers /Plugin.Activate with Implements ["secretprovider"]', async () => {
      const { app } = setup();
      const res = await request(app).post('/Plugin.Activate');
      expect(res.status).to.equal(200);
      expect(JSON.parse(res.text)).to.deep.equal({ Implements: ['secretprovider'] });
    });

    it('answers an unknown route with 404 and a JSON Err', async () => {
      const { app } = setup();
      const res = await request(app).post('/SecretProvider.ListSecrets').send(Buffer.from('{}'));
      expect(res.status).to.equal(404);
      expect(res.headers['content-type']).to.include(PLUGIN_CONTENT_TYPE);
      expect(JSON.parse(res.text).Err).to.include('/SecretProvider.ListSecrets');
    });

    it('answers GET on the GetSecret route with 404', async () => {
      const { app } = setup();
      expect((await request(app).get('/SecretProvider.GetSecret')).status).to.equal(404);
    });
  });

  describe('driver failures', () => {
    it('answers 500 with the message of a DsoError', async () => {
      const { app } = setup(
        new FakeDriver(async () =>
          Promise.reject(new DsoError('ERR_NOT_FOUND', 'no secret at secret/data/app/db (KV v2 mount secret/)')),
        ),
      );
      const res = await getSecret(app);
      expect(res.status).to.equal(500);
      expect(reply(res)).to.deep.equal({
        Err: 'no secret at secret/data/app/db (KV v2 mount secret/)',
        DoNotReuse: false,
      });
    });

    it('answers 400 for a request the driver finds malformed (ERR_BAD_REQUEST)', async () => {
      const { app } = setup(new FakeDriver(async () => Promise.reject(new DsoError('ERR_BAD_REQUEST', 'bad'))));
      expect((await getSecret(app)).status).to.equal(400);
    });

    it('answers 500 with a generic message for a plain Error, hiding its internals', async () => {
      const internals = `ECONNREFUSED X-Vault-Token: hvs.${VALUE}`;
      const { app } = setup(new FakeDriver(async () => Promise.reject(new Error(internals))));
      const res = await getSecret(app);
      expect(res.status).to.equal(500);
      expect(reply(res).Err).to.equal('internal error (see the plugin log)');
      expect(res.text).to.not.include('ECONNREFUSED');
      expect(res.text).to.not.include(VALUE);
    });

    it('answers 500 with a generic message when the driver throws synchronously', async () => {
      const driver: SecretDriver = {
        getSecret: () => {
          throw new TypeError('cannot read properties of undefined');
        },
      };
      const { app } = setup(driver, 100);
      const res = await getSecret(app);
      expect(res.status).to.equal(500);
      expect(reply(res).Err).to.equal('internal error (see the plugin log)');
      await sleep(120); // let the stray deadline timer of the bug below fire inside this test
    });

    it('leaves no deadline timer and no unhandled rejection behind a driver that throws synchronously', async () => {
      const unhandled: unknown[] = [];
      const listener = (reason: unknown) => unhandled.push(reason);
      process.on('unhandledRejection', listener);
      try {
        const driver: SecretDriver = {
          getSecret: () => {
            throw new TypeError('boom');
          },
        };
        const { app } = setup(driver, 100);
        expect((await getSecret(app)).status).to.equal(500);
        await sleep(150);
        expect(unhandled).to.deep.equal([]);
      } finally {
        process.off('unhandledRejection', listener);
      }
    });

    it('answers within the deadline with ERR_TIMEOUT when the driver never answers, and aborts it', async () => {
      const driver = new FakeDriver(() => new Promise<SecretResult>(() => undefined));
      const { app, status } = setup(driver, 300);
      // Timed inside the server, from the request's arrival to the reply's last byte.
      let served = -1;
      const timed = (req: IncomingMessage, res: ServerResponse) => {
        const arrived = process.hrtime.bigint();
        res.on('finish', () => (served = Number((process.hrtime.bigint() - arrived) / 1_000_000n)));
        app(req, res);
      };
      const started = Date.now();
      const res = await getSecret(timed);
      const elapsed = Date.now() - started;
      expect(res.status).to.equal(500);
      expect(reply(res).Err).to.match(/DSO_TIMEOUT/);
      expect(served).to.be.within(200, 299);
      expect(elapsed, 'seen by the client, connection set-up included').to.be.below(500);
      expect(driver.signals[0].aborted).to.equal(true);
      expect(status.recentRecords()[0]).to.include({ outcome: 'error', code: 'ERR_TIMEOUT' });
    });

    it('drops a driver result that arrives after the deadline and keeps serving', async () => {
      const late = deferred<SecretResult>();
      let calls = 0;
      const driver = new FakeDriver(() =>
        ++calls === 1 ? late.promise : Promise.resolve({ value: Buffer.from('second'), doNotReuse: false, source: {} }),
      );
      const { app, status } = setup(driver, 100);
      expect((await getSecret(app)).status).to.equal(500);
      late.reject(new Error('late failure'));
      late.resolve({ value: Buffer.from('late'), doNotReuse: false, source: {} });
      await sleep(10);
      const res = await getSecret(app);
      expect(res.status).to.equal(200);
      expect(Buffer.from(reply(res).Value!, 'base64').toString()).to.equal('second');
      // The late result left no record of its own: one for the timeout, one for the second request.
      expect(status.recentRecords().map((r) => r.code ?? r.outcome)).to.deep.equal(['ERR_TIMEOUT', 'ok']);
    });
  });

  describe('status and logs', () => {
    it('lists recent records on GET /DSO.Status, never the value', async () => {
      const { app } = setup(ok(VALUE, false), 5000, { describe: () => ({ version: '9.9.9' }) as StatusFacts });
      await getSecret(app);
      await getSecret(app, { ...dockerRequest, ServiceName: 'api', ServiceID: 'svc-id-2', SecretName: 'api_key' });
      const res = await request(app).get('/DSO.Status');
      expect(res.status).to.equal(200);
      const body = JSON.parse(res.text);
      expect(body.version).to.equal('9.9.9');
      expect(body.recent).to.have.length(2);
      expect(body.recent[0]).to.include({
        service: 'web',
        serviceId: 'svc-id-1',
        task: 'web.1.task-id-1',
        secret: 'db_password',
        path: 'secret/data/app/db',
        field: 'password',
        version: 3,
        outcome: 'ok',
        doNotReuse: false,
      });
      expect(body.secrets).to.have.length(2);
      expect(res.text).to.not.include(VALUE);
      expect(res.text).to.not.include(VALUE_B64);
    });

    it('filters GET /DSO.Status?service= by service name or ID', async () => {
      const { app } = setup();
      await getSecret(app);
      await getSecret(app, { ...dockerRequest, ServiceName: 'api', ServiceID: 'svc-id-2' });
      const byName = JSON.parse((await request(app).get('/DSO.Status?service=api')).text);
      expect(byName.secrets.map((r: { service: string }) => r.service)).to.deep.equal(['api']);
      const byId = JSON.parse((await request(app).get('/DSO.Status?service=svc-id-1')).text);
      expect(byId.secrets.map((r: { service: string }) => r.service)).to.deep.equal(['web']);
    });

    it('records the error and its code on failure', async () => {
      const failure = Object.assign(new DsoError('ERR_FIELD_MISSING', 'field "pw" not found'), {
        source: { path: 'secret/data/app/db', field: 'pw' },
      });
      const { app, status } = setup(new FakeDriver(async () => Promise.reject(failure)));
      await getSecret(app);
      expect(status.latestRecords('web')[0]).to.include({
        outcome: 'error',
        code: 'ERR_FIELD_MISSING',
        error: 'field "pw" not found',
        path: 'secret/data/app/db',
        field: 'pw',
      });
    });

    it('logs one line per GetSecret with service, task, secret, path, field, outcome and duration, never the value', async () => {
      const { app, lines, records } = setup(ok(VALUE));
      await getSecret(app);
      const entries = records().filter((r) => r.message === 'GetSecret');
      expect(entries).to.have.length(1);
      expect(entries[0]).to.include({
        level: 'info',
        service: 'web',
        task: 'web.1.task-id-1',
        secret: 'db_password',
        path: 'secret/data/app/db',
        field: 'password',
        outcome: 'ok',
      });
      expect(entries[0].durationMs).to.be.a('number');
      expect(entries[0].durationMs as number).to.be.at.least(0);
      const all = lines.join('\n');
      expect(all).to.not.include(VALUE);
      expect(all).to.not.include(VALUE_B64);
    });

    it('logs a failed GetSecret as a warning with its code and message', async () => {
      const { app, records } = setup(
        new FakeDriver(async () =>
          Promise.reject(new DsoError('ERR_VAULT_DENIED', 'permission denied reading secret/data/app/db')),
        ),
      );
      await getSecret(app);
      const entry = records().find((r) => r.message === 'GetSecret')!;
      expect(entry).to.include({
        level: 'warn',
        outcome: 'error',
        code: 'ERR_VAULT_DENIED',
        service: 'web',
        secret: 'db_password',
      });
    });

    it('logs a malformed request too, once', async () => {
      const { app, records } = setup();
      await getSecret(app, '{');
      const entries = records().filter((r) => r.message === 'GetSecret');
      expect(entries).to.have.length(1);
      expect(entries[0]).to.include({ outcome: 'error', code: 'ERR_BAD_REQUEST' });
    });
  });

  describe('POST /DSO.TestVault', () => {
    it('answers 404 when the plugin has no Vault test', async () => {
      const { app } = setup();
      expect((await request(app).post('/DSO.TestVault')).status).to.equal(404);
    });

    it('passes the Reference to the test and answers its result', async () => {
      const seen: Array<string | undefined> = [];
      const { app } = setup(ok(), 5000, {
        testVault: async (reference) => {
          seen.push(reference);
          return { ok: true };
        },
      });
      const res = await request(app)
        .post('/DSO.TestVault')
        .send(Buffer.from(JSON.stringify({ Reference: 'dso://secret/data/x#y' })));
      expect(res.status).to.equal(200);
      expect(JSON.parse(res.text)).to.deep.equal({ ok: true });
      await request(app).post('/DSO.TestVault');
      expect(seen).to.deep.equal(['dso://secret/data/x#y', undefined]);
    });

    it('answers 400 for a Reference that is not a string', async () => {
      const { app } = setup(ok(), 5000, { testVault: async () => ({ ok: true }) });
      const res = await request(app)
        .post('/DSO.TestVault')
        .send(Buffer.from(JSON.stringify({ Reference: 5 })));
      expect(res.status).to.equal(400);
    });
  });
});

describe('checkGetSecretRequest', () => {
  it('names every field of the wrong type', () => {
    const { request: checked, problem } = checkGetSecretRequest({
      SecretName: 1,
      TaskID: {},
      SecretLabels: { a: 'b' },
    });
    expect(checked).to.equal(undefined);
    expect(problem).to.include('SecretName must be string');
    expect(problem).to.include('TaskID must be string');
  });

  it('returns a valid request as it is', () => {
    const body = { SecretName: 'x', SecretLabels: { 'dso.ref': 'dso://a/b' } };
    expect(checkGetSecretRequest(body)).to.deep.equal({ request: body });
  });
});
