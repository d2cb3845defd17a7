// Property-based tests of everything in src/resolve that reads outside input: references,
// labels, templates and DSO_ALLOWED_PATHS. Checked against an independent reference
// implementation of the documented path rules (./support.ts).
import { expect } from 'chai';
import fc from 'fast-check';
import { KvEngine } from '../../src/engines/kv';
import { LeasedEngine } from '../../src/engines/leased';
import type { MountInfo } from '../../src/engines/mounts';
import { DsoError, ErrorCode } from '../../src/errors';
import { parseLabels } from '../../src/resolve/labels';
import { PathPolicy } from '../../src/resolve/policy';
import { checkPath, parseReference } from '../../src/resolve/reference';
import { Resolver, RequestFacts, STACK_LABEL } from '../../src/resolve/resolver';
import { fillTemplate, TemplateContext } from '../../src/resolve/template';
import {
  Context,
  contextValue,
  pathDefect,
  patternText,
  referenceText,
  refAllows,
  refMayAllow,
  RUNS,
  segment,
  writtenPath,
} from './support';

/** Runs `fn`; returns its result, or the DsoError it threw. Anything else thrown fails the property. */
function outcome<T>(fn: () => T, codes: ErrorCode[]): { value?: T; error?: DsoError } {
  try {
    return { value: fn() };
  } catch (err) {
    if (!(err instanceof DsoError))
      throw new Error(
        `threw ${(err as Error)?.name ?? typeof err} instead of a DsoError: ${String((err as Error)?.message ?? err)}`,
      );
    if (!codes.includes(err.code)) throw new Error(`unexpected code ${err.code}: ${err.message}`);
    if (err.message.length === 0) throw new Error(`${err.code} with an empty message`);
    return { error: err };
  }
}

const LABEL_NAMES = ['dso.ref', 'dso.path', 'dso.field', 'dso.version', 'dso.format', 'dso.reuse', 'dso.rotate'];

const labelValue = fc.oneof(
  { weight: 4, arbitrary: referenceText },
  { weight: 2, arbitrary: writtenPath },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '1',
      '0',
      '01',
      '-1',
      '1e3',
      '99999999999',
      '2',
      ' 1',
      'raw',
      'json',
      'env',
      'base64',
      'pem',
      'RAW',
      'true',
      'false',
      'TRUE',
      '',
      'password',
    ),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
);

const labels = fc.dictionary(
  fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...LABEL_NAMES) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        'dso.other',
        'DSO.REF',
        'dso.',
        'dso.ref ',
        STACK_LABEL,
        '__proto__',
        'constructor',
        'toString',
      ),
    },
    { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
  ),
  labelValue,
  { maxKeys: 5 },
);

function facts(withPlus: boolean) {
  const v = contextValue(withPlus);
  return fc.record(
    {
      SecretName: v,
      SecretLabels: fc.oneof({ weight: 6, arbitrary: labels }, { weight: 1, arbitrary: fc.constant(null) }),
      ServiceID: fc.string({ maxLength: 6 }),
      ServiceName: v,
      ServiceLabels: fc.oneof(
        { weight: 6, arbitrary: v.map((stack) => ({ [STACK_LABEL]: stack })) },
        { weight: 1, arbitrary: fc.constant(null) },
        { weight: 1, arbitrary: fc.constant({}) },
      ),
      TaskID: fc.string({ maxLength: 6 }),
      TaskName: v,
      NodeID: v,
    },
    { requiredKeys: [] },
  ) as fc.Arbitrary<RequestFacts>;
}

/** Requests whose reference is mostly well formed, so that many plans are accepted. */
function plausibleFacts(withPlus: boolean) {
  const v = contextValue(withPlus);
  const ref = fc
    .tuple(
      fc.array(
        fc.oneof(
          { weight: 3, arbitrary: fc.constantFrom('secret', 'data', 'a', 'b', 'alpha', 'beta', 'db', 'x') },
          { weight: 2, arbitrary: fc.constantFrom('{stack}', '{service}', '{secret}') },
          { weight: 1, arbitrary: segment },
        ),
        {
          minLength: 1,
          maxLength: 5,
        },
      ),
      fc.constantFrom('', '#password'),
    )
    .map(([parts, field]) => `dso://${parts.join('/')}${field}`);
  return fc.record({
    SecretName: v,
    SecretLabels: ref.map((r) => ({ 'dso.ref': r })),
    ServiceName: v,
    ServiceLabels: v.map((stack) => ({ [STACK_LABEL]: stack })),
    TaskName: v,
  }) as fc.Arbitrary<RequestFacts>;
}

const patterns = fc.array(patternText, { minLength: 1, maxLength: 3 });

/**
 * Patterns and a request whose reference is one of the patterns filled in (globs replaced,
 * templates kept or swapped for another stack's name, `data/` sometimes dropped as the
 * Vault CLI writes it), so that both the accepted and the refused side are well covered.
 */
function alignedCase(withPlus: boolean): fc.Arbitrary<[string[], RequestFacts]> {
  const v = contextValue(withPlus);
  return patterns.chain((pats) =>
    fc
      .tuple(
        fc.nat(pats.length - 1),
        fc.array(fc.constantFrom('x', 'x/y', 'db', '', 'alpha', '..', 'a/../b'), { minLength: 8, maxLength: 8 }),
        fc.array(fc.constantFrom('p', 'alpha', 'beta', ''), { minLength: 8, maxLength: 8 }),
        fc.constantFrom('{stack}', '{stack}', 'alpha', 'beta', '{service}'),
        fc.boolean(),
        fc.constantFrom('', '', '#password'),
        fc.record({
          SecretName: v,
          ServiceName: v,
          ServiceLabels: v.map((stack) => ({ [STACK_LABEL]: stack })),
          TaskName: v,
        }),
      )
      .map(([which, stars, pluses, stackAs, dropData, field, base]): [string[], RequestFacts] => {
        let s = 0;
        let p = 0;
        let text = pats[which]
          .replace(/^\/+/, '')
          .replace(/\*/g, () => stars[s++ % stars.length])
          .replace(/\+/g, () => pluses[p++ % pluses.length])
          .replace(/\{stack\}/g, stackAs);
        if (dropData) text = text.replace(/(^|\/)data\//, '$1');
        return [pats, { ...base, SecretLabels: { 'dso.ref': `dso://${text}${field}` } }];
      }),
  );
}

/** The mounts a plan's path could really be on: any leading run of its segments, KV v1, v2 or another engine. */
function simulatedApiPaths(planPath: string): { mount: MountInfo; apiPath?: string }[] {
  const kv = new KvEngine(undefined as never);
  const leased = new LeasedEngine(undefined as never, undefined as never);
  const segments = planPath.split('/');
  const out: { mount: MountInfo; apiPath?: string }[] = [];
  for (let k = 1; k <= segments.length; k++) {
    const mountPath = `${segments.slice(0, k).join('/')}/`;
    for (const mount of [
      { path: mountPath, type: 'kv', kvVersion: 2 as const },
      { path: mountPath, type: 'kv', kvVersion: 1 as const },
      { path: mountPath, type: 'database' },
    ]) {
      const engine = mount.kvVersion ? kv : leased;
      const result = outcome(() => engine.apiPath(planPath, mount), ['ERR_REFERENCE']);
      out.push({ mount, apiPath: result.value });
    }
  }
  return out;
}

const ctxOf = (request: RequestFacts): Context => ({
  service: request.ServiceName || undefined,
  stack: request.ServiceLabels?.[STACK_LABEL] || undefined,
  secret: request.SecretName || undefined,
  task: request.TaskName || undefined,
  node: request.NodeID || undefined,
});

/**
 * The soundness property: whenever the early check (Resolver.plan) and the final check
 * (PathPolicy.allows on the engine's API path) both accept, the API path matches one of the
 * patterns by the reference rules, and it is a clean path.
 */
function soundness(withPlus: boolean) {
  let accepted = 0;
  const cases = fc.oneof(
    alignedCase(withPlus),
    fc.tuple(patterns, fc.oneof(plausibleFacts(withPlus), facts(withPlus))),
  );
  const property = fc.property(cases, ([pats, request]) => {
    const resolver = new Resolver(new PathPolicy(pats));
    const plan = outcome(
      () => resolver.plan(request),
      ['ERR_LABELS', 'ERR_REFERENCE', 'ERR_TEMPLATE', 'ERR_PATH_REFUSED'],
    );
    if (!plan.value) return;
    expect(pathDefect(plan.value.path), plan.value.path).to.equal(undefined);
    for (const { apiPath } of simulatedApiPaths(plan.value.path)) {
      if (apiPath === undefined) continue;
      if (!resolver.policy.allows(apiPath, plan.value.context)) continue;
      accepted++;
      expect(pathDefect(apiPath), apiPath).to.equal(undefined);
      expect(
        refAllows(pats, apiPath, ctxOf(request)),
        `${apiPath} accepted, but matches none of ${JSON.stringify(pats)} for ${JSON.stringify(ctxOf(request))}`,
      ).to.equal(true);
    }
  });
  fc.assert(property, { numRuns: RUNS });
  // Not vacuous: a good share of the generated cases really reached an accepted API path.
  expect(accepted).to.be.greaterThan(RUNS / 20);
}

describe('property: references, labels, templates and DSO_ALLOWED_PATHS', function () {
  this.timeout(120_000);

  it('parseReference throws only ERR_REFERENCE, and an accepted path is clean', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          { weight: 4, arbitrary: referenceText },
          { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 60 }) },
        ),
        (text) => {
          const { value } = outcome(() => parseReference(text), ['ERR_REFERENCE']);
          if (!value) return;
          // Templates are still unfilled here: braces are the only characters beyond a filled path's.
          expect(pathDefect(value.path.replace(/[{}]/g, 'x')), value.path).to.equal(undefined);
          expect(text.startsWith('dso://')).to.equal(true);
          for (const v of Object.values(value.params)) expect(typeof v).to.equal('string');
          if (value.field !== undefined) expect(value.field).to.match(/^[^\u0000-\u001f\u007f]{1,256}$/);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('fillTemplate throws only ERR_TEMPLATE, and a filled value never adds a segment, a "..", or a brace', () => {
    const ctx = fc.record(
      {
        service: contextValue(true),
        stack: contextValue(true),
        secret: contextValue(true),
        task: contextValue(true),
        node: contextValue(true),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(writtenPath, ctx, (text, context: TemplateContext) => {
        const { value } = outcome(() => fillTemplate(text, context, 'path'), ['ERR_TEMPLATE']);
        if (value === undefined) return;
        expect(value.split('/').length, `${text} -> ${value}`).to.equal(text.split('/').length);
        expect(value).to.not.match(/[{}]/);
        // A path that was clean before filling is clean after.
        if (outcome(() => checkPath(text, 't'), ['ERR_REFERENCE']).error === undefined)
          expect(pathDefect(value), value).to.equal(undefined);
      }),
      { numRuns: RUNS },
    );
  });

  it('parseLabels throws only ERR_LABELS or ERR_REFERENCE, and the same labels always give the same answer', () => {
    fc.assert(
      fc.property(labels, fc.option(referenceText, { nil: undefined }), (l, template) => {
        const first = outcome(() => parseLabels(l, template), ['ERR_LABELS', 'ERR_REFERENCE']);
        const second = outcome(() => parseLabels(l, template), ['ERR_LABELS', 'ERR_REFERENCE']);
        expect(second.error?.code).to.equal(first.error?.code);
        if (!first.value) return;
        expect(first.value).to.deep.equal(second.value);
        expect(pathDefect(first.value.ref.path.replace(/[{}]/g, 'x')), first.value.ref.path).to.equal(undefined);
        expect(['raw', 'json', 'env', 'base64', 'pem']).to.include(first.value.format);
        if (first.value.version !== undefined)
          expect(Number.isSafeInteger(first.value.version) && first.value.version > 0).to.equal(true);
      }),
      { numRuns: RUNS },
    );
  });

  it('Resolver.plan throws only DsoErrors with a stable code, and an accepted plan has a clean path the policy allows', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          { weight: 3, arbitrary: fc.array(patternText, { maxLength: 3 }) },
          { weight: 1, arbitrary: fc.constant<string[]>([]) },
        ),
        facts(true),
        fc.option(referenceText, { nil: undefined }),
        (pats, request, template) => {
          const resolver = new Resolver(new PathPolicy(pats), template);
          const codes: ErrorCode[] = ['ERR_LABELS', 'ERR_REFERENCE', 'ERR_TEMPLATE', 'ERR_PATH_REFUSED'];
          const first = outcome(() => resolver.plan(request), codes);
          const second = outcome(() => resolver.plan(request), codes);
          expect(second.error?.code).to.equal(first.error?.code);
          if (!first.value) return;
          expect(pathDefect(first.value.path), first.value.path).to.equal(undefined);
          expect(first.value.path.length).to.be.at.most(1024);
          expect(resolver.policy.mayAllow(first.value.path, first.value.context)).to.equal(true);
        },
      ),
      { numRuns: RUNS },
    );
  });

  // Template values include `+`, `*`, `..`, `a/b` and unicode: a value is always literal text.
  it('an accepted API path always matches an allowed pattern (reference implementation)', () => {
    soundness(true);
  });

  it('the early check never refuses a path the final check would allow, and allows() agrees with the reference rules', () => {
    let early = 0;
    fc.assert(
      fc.property(
        fc.oneof(alignedCase(true), fc.tuple(patterns, fc.oneof(plausibleFacts(true), facts(true)))),
        ([pats, request]) => {
          const resolver = new Resolver(new PathPolicy(pats));
          const plan = outcome(
            () => resolver.plan(request),
            ['ERR_LABELS', 'ERR_REFERENCE', 'ERR_TEMPLATE', 'ERR_PATH_REFUSED'],
          );
          const ctx = ctxOf(request);
          if (plan.error?.code === 'ERR_PATH_REFUSED') {
            // Refused early: no engine could have turned it into an allowed path.
            const written = plan.error.source!.path!;
            expect(
              refMayAllow(pats, written, ctx),
              `${written} refused early although ${JSON.stringify(pats)} allow it`,
            ).to.equal(false);
            for (const { apiPath } of simulatedApiPaths(written))
              if (apiPath) expect(refAllows(pats, apiPath, ctx), `${apiPath} would be allowed`).to.equal(false);
            return;
          }
          if (!plan.value) return;
          early++;
          expect(refMayAllow(pats, plan.value.path, ctx), `${plan.value.path} accepted early`).to.equal(true);
          for (const { apiPath } of simulatedApiPaths(plan.value.path)) {
            if (apiPath)
              expect(
                resolver.policy.allows(apiPath, plan.value.context),
                `${apiPath} under ${JSON.stringify(pats)}`,
              ).to.equal(refAllows(pats, apiPath, ctx));
          }
        },
      ),
      { numRuns: RUNS },
    );
    expect(early).to.be.greaterThan(RUNS / 20);
  });

  it('a path the early check accepts is served as an allowed read by some mount layout', () => {
    fc.assert(
      fc.property(fc.oneof(alignedCase(true), fc.tuple(patterns, plausibleFacts(true))), ([pats, request]) => {
        const resolver = new Resolver(new PathPolicy(pats));
        const plan = outcome(
          () => resolver.plan(request),
          ['ERR_LABELS', 'ERR_REFERENCE', 'ERR_TEMPLATE', 'ERR_PATH_REFUSED'],
        );
        if (!plan.value) return;
        const served = simulatedApiPaths(plan.value.path).some(
          ({ apiPath }) => apiPath !== undefined && resolver.policy.allows(apiPath, plan.value!.context),
        );
        expect(served, `${plan.value.path} accepted early but never allowed`).to.equal(true);
      }),
      { numRuns: RUNS },
    );
  });
});
