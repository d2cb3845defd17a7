// Property against a real OpenBao: with DSO_ALLOWED_PATHS confining each stack to its own
// subtree, random references, stack labels and service names never make the plugin send
// OpenBao a request for a path outside the allowed patterns, and no stack ever receives
// another stack's secret. What OpenBao received is read from its audit log, request by
// request, and attributed by the plugin's own token and the X-DSO-Task header.
import { expect } from 'chai';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { STACK_LABEL } from '../../src/resolve/resolver';
import { captureReply, secret } from '../support/capture';
import { OpenBao, sharedOpenBao } from '../support/openbao';
import { credentialFile, startTestPlugin, TestPlugin } from '../support/plugin';
import {
  Context,
  contextValue,
  pathDefect,
  post,
  refAllows,
  refMayAllow,
  RUNS,
  Served,
  serveOnSocket,
  TRICKY_SEGMENTS,
  watchProcess,
} from './support';

const n = randomBytes(3).toString('hex');
const M2 = `prop-kv2-${n}`; // KV v2
const M1 = `prop-kv1-${n}`; // KV v1
const M0 = `prop-none-${n}`; // nothing mounted there: every request for it asks Vault for its mount
const STACKS = ['alpha', 'beta', 'gamma', 'shared'];
const INTERNAL = 'internal error (see the plugin log)';

/**
 * Each stack in its own subtree; a shared subtree for everyone; and a pattern naming
 * `data/` under the KV v1 mount, which lets the early check pass paths that the final check
 * refuses once Vault says the mount is KV v1 (counted in `stats.refusedAfterMountLookup`).
 */
const ALLOWED = [
  `${M2}/data/{stack}/*`,
  `${M1}/{stack}/+`,
  `${M2}/data/shared/+`,
  `${M1}/data/{stack}/*`,
  `${M0}/data/{stack}/*`,
];

/** A fresh plugin (empty mount cache) every so many cases, so mount lookups happen throughout. */
const RESTART_EVERY = 1_000;

/** Paths the plugin reaches for itself, on no workload's behalf: login, renewal, leases. */
const INTERNAL_PATHS = new Set([
  'auth/token/lookup-self',
  'auth/token/renew-self',
  'sys/leases/renew',
  'sys/leases/revoke',
  'sys/leases/lookup',
]);

interface AuditRecord {
  type: string;
  auth?: { client_token?: string };
  request?: { path?: string; client_token?: string; headers?: Record<string, string[]> };
}

/** Reads what OpenBao appended to its audit log since the last call. */
class AuditTail {
  private offset: number;
  private rest = '';

  constructor(private readonly file: string) {
    this.offset = fs.existsSync(file) ? fs.statSync(file).size : 0;
  }

  read(): AuditRecord[] {
    const fd = fs.openSync(this.file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      if (size <= this.offset) return [];
      const buffer = Buffer.alloc(size - this.offset);
      fs.readSync(fd, buffer, 0, buffer.length, this.offset);
      this.offset = size;
      const text = this.rest + buffer.toString('utf8');
      const lines = text.split('\n');
      this.rest = lines.pop() ?? '';
      return lines.filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as AuditRecord);
    } finally {
      fs.closeSync(fd);
    }
  }
}

const canaries = new Map<string, string>(); // canary value -> stack whose subtree holds it
function canary(stack: string, where: string): string {
  const value = secret(`prop-canary-${n}-${stack}-${where}-${randomBytes(4).toString('hex')}`);
  canaries.set(value, stack);
  return value;
}

// ----- generators -------------------------------------------------------------------------

const stackValue = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...STACKS) },
  { weight: 1, arbitrary: contextValue(true) },
);
const nameValue = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('web', 'alpha', 'beta', 'db') },
  { weight: 2, arbitrary: contextValue(true) },
  { weight: 1, arbitrary: fc.constantFrom('\ud800', 'we\udc00b', 'é'.repeat(200), 'x'.repeat(2000)) },
);

const refSegment = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      ...STACKS,
      'db',
      'team',
      'deep',
      'data',
      'metadata',
      '{stack}',
      '{service}',
      '{secret}',
      '{task}',
      'other-stack',
    ),
  },
  { weight: 2, arbitrary: fc.constantFrom(...TRICKY_SEGMENTS) },
  { weight: 1, arbitrary: fc.constantFrom(M2, M1, M0, 'secret', 'sys', 'auth', 'cubbyhole') },
);
const refStart = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      M2,
      M2,
      M1,
      M0,
      `${M2}/data`,
      `${M2}/data`,
      `${M2}/metadata`,
      `${M1}/data`,
      `${M0}/data`,
    ),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      'secret/data',
      'secret',
      'sys/internal/ui/mounts',
      'auth/token',
      'cubbyhole',
      `/${M2}`,
      `${M2}/`,
      `${M2}/..`,
      `${M1}/.`,
    ),
  },
);
const reference = fc
  .tuple(
    fc.constantFrom('dso://', 'dso://', 'dso://', 'dso://', 'dso://', 'dso:///', ''),
    refStart,
    fc.array(fc.tuple(fc.constantFrom('/', '/', '/', '/', '//', '/../', '\\'), refSegment), {
      minLength: 0,
      maxLength: 4,
    }),
    fc.constantFrom('', '', '#password', '#user', '#password', '#nope'),
  )
  .map(([scheme, start, rest, field]) => scheme + start + rest.map(([sep, s]) => sep + s).join('') + field);

/** Well-formed references into the stacks' subtrees, own or another's, API or CLI form. */
const plausible = fc
  .tuple(
    fc.constantFrom(`${M2}/data`, `${M2}/data`, M2, M2, M1, M1, `${M1}/data`, M0, `${M0}/data`),
    fc.constantFrom('{stack}', '{stack}', '{stack}', '{stack}', ...STACKS, '{service}', '{secret}'),
    fc.constantFrom('db', 'db', 'db', 'team/deep', 'team/deep', 'nope', 'team'),
    fc.constantFrom('', '#password', '#password', '#password', '#user', '#nope'),
  )
  .map(([start, stack, name, field]) => `dso://${start}/${stack}/${name}${field}`);

const labels = fc.oneof(
  { weight: 10, arbitrary: plausible.map((r) => ({ 'dso.ref': r })) },
  { weight: 4, arbitrary: reference.map((r) => ({ 'dso.ref': r })) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(reference, fc.constantFrom('password', 'user'))
      .map(([r, f]) => ({ 'dso.path': r.replace(/#.*$/, ''), 'dso.field': f })),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(reference, fc.constantFrom('1', '2', '99'))
      .map(([r, v]) => ({ 'dso.ref': r, 'dso.version': v })),
  },
  { weight: 1, arbitrary: fc.constant({}) },
);

const request = fc.record({
  SecretName: nameValue,
  ServiceName: nameValue,
  stack: fc.option(stackValue, { nil: undefined, freq: 10 }),
  labels,
  NodeID: fc.constantFrom('node1', '..', 'n/1'),
});

// ----- the property -----------------------------------------------------------------------

describe('property: what a real OpenBao receives under DSO_ALLOWED_PATHS', function () {
  this.timeout(120_000);
  let bao: OpenBao;
  let plugin: TestPlugin;
  let served: Served;
  let tokenHash: string;
  let tokenFile: string;

  async function restart(): Promise<void> {
    await served?.close();
    plugin?.stop();
    plugin = startTestPlugin({
      VAULT_ADDR: bao.addr,
      VAULT_AUTH_METHOD: 'token',
      VAULT_TOKEN_FILE: tokenFile,
      DSO_TIMEOUT: '5s',
      DSO_ALLOWED_PATHS: ALLOWED.join(','),
    });
    served = await serveOnSocket(plugin.app);
  }

  before(async function () {
    bao = await sharedOpenBao();
    await bao.api('POST', `sys/mounts/${M2}`, { type: 'kv', options: { version: '2' } });
    await bao.api('POST', `sys/mounts/${M1}`, { type: 'kv', options: { version: '1' } });
    for (const stack of STACKS) {
      await bao.api('POST', `${M2}/data/${stack}/db`, { data: { password: canary(stack, 'v2db'), user: stack } });
      await bao.api('POST', `${M2}/data/${stack}/db`, { data: { password: canary(stack, 'v2db2'), user: stack } });
      await bao.api('POST', `${M2}/data/${stack}/team/deep`, { data: { password: canary(stack, 'v2deep') } });
      await bao.api('POST', `${M1}/${stack}/db`, { password: canary(stack, 'v1db'), user: stack });
      await bao.api('POST', `${M1}/${stack}/team/deep`, { password: canary(stack, 'v1deep') });
    }
    // The plugin's token may read everything: only DSO_ALLOWED_PATHS stands between a
    // reference and another stack's secret, which is what is under test.
    await bao.api('PUT', `sys/policies/acl/prop-read-all-${n}`, { policy: 'path "*" { capabilities = ["read"] }' });
    const created = await bao.api<{ auth: { client_token: string } }>('POST', 'auth/token/create', {
      policies: [`prop-read-all-${n}`],
      ttl: '1h',
    });
    const token = secret(created.auth.client_token);
    tokenHash = (await bao.api<{ data: { hash: string } }>('POST', 'sys/audit-hash/file', { input: token })).data.hash;
    await bao.api('PUT', 'sys/config/auditing/request-headers/X-DSO-Task', { hmac: false });
    tokenFile = credentialFile(`prop-token-${n}`, token);
    await restart();
  });

  after(async () => {
    await served?.close();
    plugin?.stop();
  });

  it("sends OpenBao only allowed paths, and never hands a stack another stack's secret", async () => {
    const tail = new AuditTail(bao.auditLog);
    const watch = watchProcess();
    const stats = {
      cases: 0,
      ok: 0,
      refused: 0,
      reads: 0,
      lookups: 0,
      askedThenRefused: 0,
      refusedAfterMountLookup: 0,
    };
    let i = 0;
    await fc
      .assert(
        fc.asyncProperty(request, async (r) => {
          i++;
          stats.cases++;
          if (i % RESTART_EVERY === 0) await restart();
          const task = `ptask.${n}.${i}`;
          const body = {
            SecretName: r.SecretName,
            SecretLabels: r.labels,
            ServiceID: `svc-${n}`,
            ServiceName: r.ServiceName,
            ServiceLabels: r.stack === undefined ? null : { [STACK_LABEL]: r.stack },
            TaskID: `tid-${i}`,
            TaskName: task,
            NodeID: r.NodeID,
          };
          const ctx: Context = {
            service: r.ServiceName || undefined,
            stack: r.stack || undefined,
            secret: r.SecretName || undefined,
            task,
            node: r.NodeID || undefined,
          };
          const reply = await post(served, '/SecretProvider.GetSecret', Buffer.from(JSON.stringify(body)), {}, 10_000);
          expect(reply.error, 'a reply arrived').to.equal(undefined);
          captureReply(reply.text);
          const json = JSON.parse(reply.text) as { Value?: string; Err: string; DoNotReuse: boolean };
          expect(json.Err).to.be.a('string');
          expect(json.DoNotReuse).to.be.a('boolean');
          expect(json.Err, 'every failure is one the plugin understood').to.not.equal(INTERNAL);

          // What OpenBao received meanwhile, on this plugin's token.
          let lookedUp = false;
          let read = false;
          for (const entry of tail.read()) {
            if (entry.type !== 'request') continue;
            const token = entry.auth?.client_token ?? entry.request?.client_token;
            if (token !== tokenHash) continue;
            const p = entry.request?.path ?? '';
            const taskHeader = entry.request?.headers?.['x-dso-task']?.[0];
            if (taskHeader === undefined) {
              expect(INTERNAL_PATHS.has(p), `${p} requested on no workload's behalf`).to.equal(true);
              continue;
            }
            expect(taskHeader, `request ${p} of another case`).to.equal(task);
            const mountsPrefix = 'sys/internal/ui/mounts/';
            if (p.startsWith(mountsPrefix)) {
              // Which mount serves this path: asked only for paths the early check lets through.
              const asked = p.slice(mountsPrefix.length);
              lookedUp = true;
              stats.lookups++;
              expect(pathDefect(asked), `mount lookup for ${asked}`).to.equal(undefined);
              expect(
                refMayAllow(ALLOWED, asked, ctx),
                `mount lookup for ${asked}, outside ${ALLOWED.join(',')} for ${JSON.stringify(ctx)}`,
              ).to.equal(true);
            } else {
              read = true;
              stats.reads++;
              expect(pathDefect(p), p).to.equal(undefined);
              expect(
                refAllows(ALLOWED, p, ctx),
                `read ${p}, outside ${ALLOWED.join(',')} for ${JSON.stringify(ctx)}`,
              ).to.equal(true);
            }
          }

          if (reply.status === 200) {
            stats.ok++;
            expect(read, 'a value only after a read').to.equal(true);
            const value = Buffer.from(json.Value!, 'base64').toString('utf8');
            for (const [c, owner] of canaries) {
              if (value.includes(c))
                expect(
                  owner === 'shared' || owner === ctx.stack,
                  `stack ${ctx.stack} received a secret of ${owner}`,
                ).to.equal(true);
            }
          } else {
            expect(json.Err.length).to.be.greaterThan(0);
            const refused = /^path (\S+) is not allowed by DSO_ALLOWED_PATHS/.exec(json.Err);
            if (refused) {
              stats.refused++;
              // Refused by the final check, after the early one let it through: the plugin
              // needed Vault's answer on the mount (asked now, or cached from an earlier ask).
              if (refMayAllow(ALLOWED, refused[1], ctx)) stats.refusedAfterMountLookup++;
              if (lookedUp) stats.askedThenRefused++;
            }
          }
        }),
        { numRuns: RUNS },
      )
      .finally(() => watch.stop());
    if (process.env.DSO_PROPERTY_STATS) console.log(stats);
    expect(watch.problems, 'no uncaught exception or unhandled rejection').to.deep.equal([]);
    // Not vacuous: values were served, paths refused, and OpenBao asked both ways.
    expect(stats.ok, 'values served').to.be.greaterThan(RUNS / 50);
    expect(stats.refused, 'paths refused').to.be.greaterThan(RUNS / 50);
    expect(stats.reads, 'reads that reached OpenBao').to.be.greaterThan(RUNS / 50);
    expect(stats.lookups, 'mount lookups').to.be.greaterThan(0);
  });
});

// ----- Vault's own endpoints ---------------------------------------------------------------

/** References into Vault itself rather than into a secrets engine; any token may call these (the default policy). */
const ownEndpoint = fc
  .tuple(
    fc.constantFrom(
      'auth/token/lookup-self',
      'auth/token/lookup-self',
      'auth/token/renew-self?increment=1s',
      'auth/token/revoke-self?x=1',
      'auth/token/create?ttl=1m',
      'sys/wrapping/wrap?x=1',
      'sys/tools/hash?input=abc',
      'sys/capabilities-self?paths=secret',
      'sys/internal/ui/resultant-acl',
      'sys/mounts',
      'cubbyhole/prop',
      'identity/entity/id',
    ),
    fc.constantFrom('', '#id', '#client_token', '#sum', '#data', '#policies'),
    fc.constantFrom(undefined, 'json', 'env', 'raw'),
  )
  .map(([target, field, format]) => ({
    'dso.ref': `dso://${target}${field}`,
    ...(format ? { 'dso.format': format } : {}),
  }));

describe("property: references to Vault's own endpoints, without DSO_ALLOWED_PATHS", function () {
  this.timeout(120_000);
  let bao: OpenBao;
  let plugin: TestPlugin;
  let served: Served;
  let token: string;
  let tokenHash: string;

  before(async function () {
    bao = await sharedOpenBao();
    await bao.api('PUT', `sys/policies/acl/prop-own-${n}`, {
      policy: `path "secret/data/prop-own-${n}/*" { capabilities = ["read"] }`,
    });
    const created = await bao.api<{ auth: { client_token: string } }>('POST', 'auth/token/create', {
      policies: [`prop-own-${n}`],
      ttl: '1h',
    });
    token = secret(created.auth.client_token);
    tokenHash = (await bao.api<{ data: { hash: string } }>('POST', 'sys/audit-hash/file', { input: token })).data.hash;
    await bao.api('PUT', 'sys/config/auditing/request-headers/X-DSO-Task', { hmac: false });
    plugin = startTestPlugin({
      VAULT_ADDR: bao.addr,
      VAULT_AUTH_METHOD: 'token',
      VAULT_TOKEN_FILE: credentialFile(`prop-own-token-${n}`, token),
      DSO_TIMEOUT: '5s',
    });
    served = await serveOnSocket(plugin.app);
  });

  after(async () => {
    await served?.close();
    plugin?.stop();
  });

  it("never returns the plugin's token, and sends Vault nothing on its own endpoints but the mount lookup", async () => {
    const tail = new AuditTail(bao.auditLog);
    let i = 0;
    await fc.assert(
      fc.asyncProperty(ownEndpoint, async (labels) => {
        i++;
        const task = `pown.${n}.${i}`;
        const body = {
          SecretName: 'own',
          SecretLabels: labels,
          ServiceName: 'web',
          TaskName: task,
          ServiceLabels: { [STACK_LABEL]: 'alpha' },
        };
        const reply = await post(served, '/SecretProvider.GetSecret', Buffer.from(JSON.stringify(body)), {}, 10_000);
        expect(reply.error).to.equal(undefined);
        captureReply(reply.text);
        const json = JSON.parse(reply.text) as { Value?: string; Err: string };
        if (json.Value)
          expect(
            Buffer.from(json.Value, 'base64').toString('utf8').includes(token),
            "the reply holds the plugin's token",
          ).to.equal(false);
        for (const entry of tail.read()) {
          if (entry.type !== 'request' || (entry.auth?.client_token ?? entry.request?.client_token) !== tokenHash)
            continue;
          if (entry.request?.headers?.['x-dso-task']?.[0] !== task) continue;
          const p = entry.request?.path ?? '';
          expect(
            /^(auth|sys|identity|cubbyhole)\//.test(p) && !p.startsWith('sys/internal/ui/mounts/'),
            `a GetSecret made the plugin call ${p}`,
          ).to.equal(false);
        }
      }),
      { numRuns: RUNS },
    );
  });
});
