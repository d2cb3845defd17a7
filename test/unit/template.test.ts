// Path templates filled from the request: each name, unknown names, missing values, and
// values that would let a service name walk out of its place in the path.
import { expect } from 'chai';
import { fillTemplate, templateNames, TemplateContext } from '../../src/resolve/template';
import { thrown } from './helpers';

const context: TemplateContext = {
  service: 'web',
  stack: 'shop',
  secret: 'db_password',
  task: 'web.1.abc123',
  node: 'node7xyz',
};

describe('fillTemplate (path templates)', () => {
  const names: Array<[string, string]> = [
    ['service', 'web'],
    ['stack', 'shop'],
    ['secret', 'db_password'],
    ['task', 'web.1.abc123'],
    ['node', 'node7xyz'],
  ];
  for (const [name, value] of names) {
    it(`fills {${name}} from the request`, () => {
      expect(fillTemplate(`secret/data/{${name}}/x`, context, 'path')).to.equal(`secret/data/${value}/x`);
    });
  }

  it('fills several templates, also inside one segment', () => {
    expect(fillTemplate('secret/data/{stack}/{service}-{secret}', context, 'path')).to.equal(
      'secret/data/shop/web-db_password',
    );
  });

  it('leaves a text without templates unchanged', () => {
    expect(fillTemplate('secret/data/app/db', {}, 'path')).to.equal('secret/data/app/db');
  });

  it('refuses an unknown template and lists the known ones', () => {
    const err = thrown(() => fillTemplate('secret/data/{namespace}/db', context, 'path'));
    expect(err.code).to.equal('ERR_TEMPLATE');
    expect(err.message).to.include('{namespace}');
    for (const name of ['{service}', '{stack}', '{secret}', '{task}', '{node}']) expect(err.message).to.include(name);
  });

  it('is case-sensitive about template names', () => {
    expect(thrown(() => fillTemplate('secret/{Service}', context, 'path')).code).to.equal('ERR_TEMPLATE');
  });

  it('refuses an empty template {}', () => {
    expect(thrown(() => fillTemplate('secret/{}', context, 'path')).code).to.equal('ERR_TEMPLATE');
  });

  const sources: Array<[string, RegExp]> = [
    ['service', /service name/],
    ['stack', /com\.docker\.stack\.namespace/],
    ['secret', /secret name/],
    ['task', /task name/],
    ['node', /node ID/],
  ];
  for (const [name, source] of sources) {
    it(`says where {${name}} comes from when the request lacks it`, () => {
      const err = thrown(() => fillTemplate(`secret/{${name}}`, {}, 'DSO_PATH_TEMPLATE'));
      expect(err.code).to.equal('ERR_TEMPLATE');
      expect(err.message).to.match(source);
      expect(err.message).to.include('DSO_PATH_TEMPLATE');
    });
  }

  it('treats an empty value as missing', () => {
    expect(thrown(() => fillTemplate('secret/{stack}', { stack: '' }, 'path')).message).to.match(/does not carry/);
  });

  const traversals = [
    '../../sys/raw',
    '..',
    '.',
    'a/b',
    'web/../../x',
    'a b',
    'a%2f..',
    'x\\y',
    'caf\u00e9',
    'x{stack}',
  ];
  for (const value of traversals) {
    it(`refuses the value ${JSON.stringify(value)} for {service} (no path traversal through a name)`, () => {
      const err = thrown(() => fillTemplate('secret/data/{service}/db', { service: value }, 'path'));
      expect(err.code).to.equal('ERR_TEMPLATE');
      expect(err.message).to.match(/not allowed in a path segment/);
    });
  }

  it('refuses unbalanced braces', () => {
    expect(thrown(() => fillTemplate('secret/{service', context, 'path')).code).to.equal('ERR_TEMPLATE');
    expect(thrown(() => fillTemplate('secret/service}', context, 'path')).code).to.equal('ERR_TEMPLATE');
  });

  it('templateNames lists the names used in a text', () => {
    expect(templateNames('a/{stack}/{service}-{x}')).to.deep.equal(['stack', 'service', 'x']);
  });
});
