// A secret's dso.* labels and the resolver that turns a GetSecret request into what to read.
import { expect } from 'chai';
import { DsoError } from '../../src/errors';
import { parseLabels } from '../../src/resolve/labels';
import { PathPolicy } from '../../src/resolve/policy';
import { requestContext, Resolver, STACK_LABEL } from '../../src/resolve/resolver';
import { thrown } from './helpers';

describe('parseLabels (secret labels)', () => {
  describe('where to read', () => {
    it('reads dso.ref with its field', () => {
      const spec = parseLabels({ 'dso.ref': 'dso://secret/data/app/db#password' });
      expect(spec.ref).to.deep.equal({ path: 'secret/data/app/db', field: 'password', params: {} });
    });

    it('reads dso.path and dso.field as the same thing split in two', () => {
      const spec = parseLabels({ 'dso.path': 'secret/data/app/db', 'dso.field': 'password' });
      expect(spec.ref).to.deep.equal({ path: 'secret/data/app/db', field: 'password', params: {} });
    });

    it('accepts dso.path written with the dso:// scheme', () => {
      expect(parseLabels({ 'dso.path': 'dso://secret/data/app/db' }).ref.path).to.equal('secret/data/app/db');
    });

    it('accepts dso.path without dso.field (the whole object)', () => {
      const spec = parseLabels({ 'dso.path': 'secret/data/app/db' });
      expect(spec.ref.field).to.equal(undefined);
      expect(spec.format).to.equal('json');
    });

    it('checks dso.path like a reference path', () => {
      const err = thrown(() => parseLabels({ 'dso.path': 'secret/../sys/raw' }));
      expect(err.code).to.equal('ERR_REFERENCE');
      expect(err.message).to.include('label dso.path');
    });

    it('checks dso.field', () => {
      const err = thrown(() => parseLabels({ 'dso.path': 'secret/data/app', 'dso.field': '' }));
      expect(err.code).to.equal('ERR_REFERENCE');
      expect(err.message).to.include('label dso.field');
    });

    it('reports a malformed dso.ref as coming from that label', () => {
      const err = thrown(() => parseLabels({ 'dso.ref': 'secret/data/app' }));
      expect(err.code).to.equal('ERR_REFERENCE');
      expect(err.message).to.include('label dso.ref');
    });

    it('refuses dso.ref together with dso.path', () => {
      const err = thrown(() => parseLabels({ 'dso.ref': 'dso://a/b', 'dso.path': 'a/b' }));
      expect(err.code).to.equal('ERR_LABELS');
      expect(err.message).to.match(/either dso\.ref or dso\.path/);
    });

    it('refuses dso.ref together with dso.field', () => {
      expect(thrown(() => parseLabels({ 'dso.ref': 'dso://a/b', 'dso.field': 'x' })).code).to.equal('ERR_LABELS');
    });

    it('falls back to DSO_PATH_TEMPLATE when the secret names no path', () => {
      const spec = parseLabels({}, 'secret/data/{stack}/{secret}');
      expect(spec.ref.path).to.equal('secret/data/{stack}/{secret}');
      expect(spec.format).to.equal('json');
    });

    it('accepts DSO_PATH_TEMPLATE written as a dso:// reference with a field', () => {
      const spec = parseLabels({}, 'dso://secret/data/{stack}/{secret}#value');
      expect(spec.ref).to.deep.equal({ path: 'secret/data/{stack}/{secret}', field: 'value', params: {} });
      expect(spec.format).to.equal('raw');
    });

    it('lets dso.field name the field of the DSO_PATH_TEMPLATE path', () => {
      const spec = parseLabels({ 'dso.field': 'password' }, 'secret/data/{secret}');
      expect(spec.ref.field).to.equal('password');
      expect(spec.format).to.equal('raw');
    });

    it('prefers the labels over DSO_PATH_TEMPLATE', () => {
      expect(parseLabels({ 'dso.ref': 'dso://kv/x#y' }, 'secret/data/{secret}').ref.path).to.equal('kv/x');
    });

    it('names the labels to add when there is neither a path label nor DSO_PATH_TEMPLATE', () => {
      const err = thrown(() => parseLabels({}));
      expect(err.code).to.equal('ERR_LABELS');
      expect(err.message).to.include('dso.ref');
      expect(err.message).to.include('dso.path');
      expect(err.message).to.include('DSO_PATH_TEMPLATE');
    });

    it('ignores labels outside dso.* (e.g. the stack namespace)', () => {
      expect(() =>
        parseLabels({ 'dso.ref': 'dso://a/b#c', [STACK_LABEL]: 'shop', 'com.example.team': 'x' }),
      ).to.not.throw();
    });

    it('refuses an unknown dso.* label, so a typo does not go unnoticed', () => {
      const err = thrown(() => parseLabels({ 'dso.ref': 'dso://a/b#c', 'dso.feild': 'x' }));
      expect(err.code).to.equal('ERR_LABELS');
      expect(err.message).to.include('dso.feild');
      expect(err.message).to.include('dso.field');
    });
  });

  describe('dso.version', () => {
    it('reads a positive whole number', () => {
      expect(parseLabels({ 'dso.ref': 'dso://a/b#c', 'dso.version': '3' }).version).to.equal(3);
    });

    it('is undefined when not set', () => {
      expect(parseLabels({ 'dso.ref': 'dso://a/b#c' }).version).to.equal(undefined);
    });

    for (const bad of ['0', '-1', '1.5', 'latest', '', ' 2', '02', '12345678901']) {
      it(`refuses ${JSON.stringify(bad)}`, () => {
        const err = thrown(() => parseLabels({ 'dso.ref': 'dso://a/b#c', 'dso.version': bad }));
        expect(err.code).to.equal('ERR_LABELS');
        expect(err.message).to.include('dso.version');
      });
    }
  });

  describe('dso.format', () => {
    it('defaults to raw when a field is named', () => {
      expect(parseLabels({ 'dso.ref': 'dso://a/b#c' }).format).to.equal('raw');
    });

    it('defaults to json without a field', () => {
      expect(parseLabels({ 'dso.ref': 'dso://a/b' }).format).to.equal('json');
    });

    for (const format of ['raw', 'json', 'env', 'base64']) {
      it(`accepts ${format} with a field`, () => {
        expect(parseLabels({ 'dso.ref': 'dso://a/b#c', 'dso.format': format }).format).to.equal(format);
      });
    }

    it('accepts env and json without a field', () => {
      expect(parseLabels({ 'dso.ref': 'dso://a/b', 'dso.format': 'env' }).format).to.equal('env');
      expect(parseLabels({ 'dso.ref': 'dso://a/b', 'dso.format': 'json' }).format).to.equal('json');
    });

    for (const format of ['raw', 'base64']) {
      it(`refuses ${format} without a field`, () => {
        const err = thrown(() => parseLabels({ 'dso.ref': 'dso://a/b', 'dso.format': format }));
        expect(err.code).to.equal('ERR_LABELS');
        expect(err.message).to.include('needs a field');
      });
    }

    it('refuses an unknown format and lists the known ones', () => {
      const err = thrown(() => parseLabels({ 'dso.ref': 'dso://a/b#c', 'dso.format': 'yaml' }));
      expect(err.code).to.equal('ERR_LABELS');
      expect(err.message).to.match(/raw, json, env, base64/);
    });
  });

  describe('dso.reuse and dso.rotate', () => {
    it('leave the default to the engine when not set', () => {
      const spec = parseLabels({ 'dso.ref': 'dso://a/b#c' });
      expect(spec.reuse).to.equal(undefined);
      expect(spec.rotate).to.equal(undefined);
    });

    it('read true and false', () => {
      expect(parseLabels({ 'dso.ref': 'dso://a/b#c', 'dso.reuse': 'true', 'dso.rotate': 'false' })).to.include({
        reuse: true,
        rotate: false,
      });
      expect(parseLabels({ 'dso.ref': 'dso://a/b#c', 'dso.reuse': 'false', 'dso.rotate': 'true' })).to.include({
        reuse: false,
        rotate: true,
      });
    });

    for (const label of ['dso.reuse', 'dso.rotate']) {
      for (const bad of ['yes', 'TRUE', '1', '']) {
        it(`refuses ${label}=${JSON.stringify(bad)}`, () => {
          const err = thrown(() => parseLabels({ 'dso.ref': 'dso://a/b#c', [label]: bad }));
          expect(err.code).to.equal('ERR_LABELS');
          expect(err.message).to.include(label);
        });
      }
    }
  });
});

describe('Resolver.plan (request -> what to read)', () => {
  const open = new Resolver(new PathPolicy([]));
  const request = {
    SecretName: 'shop_db_password',
    ServiceID: 'svc123',
    ServiceName: 'shop_web',
    ServiceLabels: { [STACK_LABEL]: 'shop' },
    TaskID: 'task123',
    TaskName: 'shop_web.1.task123',
    NodeID: 'node123',
  };

  it('fills every template of the path from the request', () => {
    const plan = open.plan({
      ...request,
      SecretLabels: { 'dso.ref': 'dso://secret/data/{stack}/{service}/{secret}/{task}/{node}#password' },
    });
    expect(plan.path).to.equal('secret/data/shop/shop_web/shop_db_password/shop_web.1.task123/node123');
    expect(plan.ref.field).to.equal('password');
    expect(plan.format).to.equal('raw');
  });

  it('takes {stack} from the service label com.docker.stack.namespace, not from the secret labels', () => {
    const plan = open.plan({
      ...request,
      ServiceLabels: { [STACK_LABEL]: 'blog' },
      SecretLabels: { 'dso.ref': 'dso://secret/data/{stack}/db#password', [STACK_LABEL]: 'shop' },
    });
    expect(plan.path).to.equal('secret/data/blog/db');
    expect(plan.context.stack).to.equal('blog');
  });

  it('refuses {stack} for a service outside any stack, even when the secret has the label', () => {
    const err = thrown(() =>
      open.plan({
        ...request,
        ServiceLabels: {},
        SecretLabels: { 'dso.ref': 'dso://secret/data/{stack}/db#password', [STACK_LABEL]: 'shop' },
      }),
    );
    expect(err.code).to.equal('ERR_TEMPLATE');
    expect(err.message).to.include('com.docker.stack.namespace');
  });

  it('accepts null maps (Go nil maps) as empty', () => {
    const resolver = new Resolver(new PathPolicy([]), 'secret/data/{secret}');
    expect(resolver.plan({ SecretName: 'x', SecretLabels: null, ServiceLabels: null }).path).to.equal('secret/data/x');
  });

  it('uses DSO_PATH_TEMPLATE for a secret without labels', () => {
    const resolver = new Resolver(new PathPolicy([]), 'secret/data/{stack}/{secret}');
    const plan = resolver.plan({ ...request, SecretLabels: { [STACK_LABEL]: 'shop' } });
    expect(plan.path).to.equal('secret/data/shop/shop_db_password');
    expect(plan.format).to.equal('json');
  });

  it('names the labels to add when there is no path and no DSO_PATH_TEMPLATE', () => {
    const err = thrown(() => open.plan({ ...request, SecretLabels: {} }));
    expect(err.code).to.equal('ERR_LABELS');
    expect(err.message).to.include('dso.ref');
  });

  it('fills templates in the query parameters', () => {
    const plan = open.plan({
      ...request,
      SecretLabels: { 'dso.ref': 'dso://pki/issue/web?common_name={service}.example.com&ttl=1h#certificate' },
    });
    expect(plan.params).to.deep.equal({ common_name: 'shop_web.example.com', ttl: '1h' });
  });

  it('refuses a service name that would walk out of its place in the path', () => {
    const err = thrown(() =>
      open.plan({ ...request, ServiceName: '../../sys', SecretLabels: { 'dso.ref': 'dso://secret/data/{service}#x' } }),
    );
    expect(err.code).to.equal('ERR_TEMPLATE');
  });

  it('carries the parsed labels into the plan', () => {
    const plan = open.plan({
      ...request,
      SecretLabels: {
        'dso.ref': 'dso://secret/app/db#password',
        'dso.version': '2',
        'dso.reuse': 'false',
        'dso.rotate': 'true',
      },
    });
    expect(plan).to.include({ path: 'secret/app/db', version: 2, reuse: false, rotate: true, format: 'raw' });
  });

  describe('with DSO_ALLOWED_PATHS', () => {
    const resolver = new Resolver(new PathPolicy(['secret/data/{stack}/*']));

    it('plans a path the policy allows', () => {
      expect(
        resolver.plan({ ...request, SecretLabels: { 'dso.ref': 'dso://secret/data/shop/db#password' } }).path,
      ).to.equal('secret/data/shop/db');
    });

    it('plans a KV v2 path in CLI form that may become allowed', () => {
      expect(resolver.plan({ ...request, SecretLabels: { 'dso.ref': 'dso://secret/shop/db#password' } }).path).to.equal(
        'secret/shop/db',
      );
    });

    it('refuses early, naming the path, when the policy cannot allow it', () => {
      let err: unknown;
      try {
        resolver.plan({ ...request, SecretLabels: { 'dso.ref': 'dso://secret/data/blog/db#password' } });
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(DsoError);
      expect((err as DsoError).code).to.equal('ERR_PATH_REFUSED');
      expect((err as DsoError).source).to.deep.equal({ path: 'secret/data/blog/db', field: 'password' });
    });
  });

  it('requestContext leaves absent or empty request fields undefined', () => {
    expect(requestContext({ ServiceName: '', TaskName: 'web.1.x' })).to.deep.equal({
      service: undefined,
      stack: undefined,
      secret: undefined,
      task: 'web.1.x',
      node: undefined,
    });
  });
});

describe('Resolver: whether the answer depends on who asks', () => {
  const base = {
    SecretName: 'cfg',
    ServiceName: 'web',
    TaskName: 'web.1.x',
    NodeID: 'n1',
    ServiceLabels: { 'com.docker.stack.namespace': 'shop' },
  };
  const reasonFor = (labels: Record<string, string>, patterns: string[] = [], template?: string) =>
    new Resolver(new PathPolicy(patterns), template).plan({ ...base, SecretLabels: labels }).requesterDependence;

  it('names each requester template and where it is; {secret} and plain paths depend on no one', () => {
    expect(reasonFor({ 'dso.ref': 'dso://secret/data/app/db#k' })).to.equal(undefined);
    expect(reasonFor({ 'dso.ref': 'dso://secret/data/{secret}/db#k' }, ['secret/data/{secret}/*'])).to.equal(undefined);
    expect(reasonFor({ 'dso.ref': 'dso://secret/data/{stack}/{service}#k' })).to.equal(
      "{stack}, {service} in the secret's reference",
    );
    expect(reasonFor({ 'dso.path': 'secret/data/{node}/db', 'dso.field': 'k' })).to.equal(
      "{node} in the secret's reference",
    );
    expect(reasonFor({ 'dso.ref': 'dso://pki/issue/web?common_name={task}.example.com' })).to.equal(
      "{task} in the secret's reference",
    );
    expect(reasonFor({}, [], 'secret/data/{stack}/{secret}#k')).to.equal('{stack} in DSO_PATH_TEMPLATE');
    expect(reasonFor({ 'dso.ref': 'dso://secret/data/shop/db#k' }, ['secret/data/{stack}/*', 'x/{service}'])).to.equal(
      '{stack}, {service} in DSO_ALLOWED_PATHS',
    );
  });
});
