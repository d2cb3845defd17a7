// Mount lookups (sys/internal/ui/mounts/<path>): answers are cached per mount, and an
// answer for a mount that does not contain the asked path is never cached, so it cannot
// stand in for paths it does not describe.
import { expect } from 'chai';
import { MountResolver, SECRET_ENGINE_TYPES } from '../../src/engines/mounts';
import type { SessionCall, VaultSession } from '../../src/vault/session';

function resolverAnswering(
  answers: Record<string, { path: string; type: string; accessor?: string; options?: { version: string } }>,
) {
  const calls: string[] = [];
  const session = {
    async call(call: SessionCall) {
      calls.push(call.path);
      const asked = call.path.replace('sys/internal/ui/mounts/', '');
      return { data: answers[asked] };
    },
  } as unknown as VaultSession;
  return { mounts: new MountResolver(session), calls };
}

describe('MountResolver', () => {
  it('asks Vault once per mount: later paths below it come from the cache', async () => {
    const { mounts, calls } = resolverAnswering({
      'secret/data/a': { path: 'secret/', type: 'kv', options: { version: '2' } },
    });
    expect(await mounts.find('secret/data/a', Date.now() + 1000)).to.deep.equal({
      path: 'secret/',
      type: 'kv',
      kvVersion: 2,
    });
    expect((await mounts.find('secret/data/b', Date.now() + 1000)).path).to.equal('secret/');
    expect(calls).to.deep.equal(['sys/internal/ui/mounts/secret/data/a']);
  });

  it('does not cache an answer whose mount does not contain the path (OpenBao answers token/ for auth/token/...)', async () => {
    const { mounts, calls } = resolverAnswering({
      'x/token/lookup-self': { path: 'token/', type: 'token' },
      'token/y': { path: 'token/', type: 'token' },
    });
    await mounts.find('x/token/lookup-self', Date.now() + 1000);
    await mounts.find('x/token/lookup-self', Date.now() + 1000);
    expect(calls).to.have.length(2);
  });

  it('marks auth methods, also those whose type names a secrets engine too (kubernetes, aws...)', async () => {
    // As OpenBao 2.7 answers: an auth method in namespace team-a, and a kubernetes secrets engine beside it.
    const { mounts } = resolverAnswering({
      'team-a/auth/kubernetes/role/x': {
        path: 'team-a/auth/kubernetes/',
        type: 'kubernetes',
        accessor: 'auth_kubernetes_1c09f5dd',
      },
      'team-a/k8s/creds/x': { path: 'team-a/k8s/', type: 'kubernetes', accessor: 'kubernetes_5da53808' },
      'other/x': { path: 'other/', type: 'aws', accessor: 'auth_aws_0a1b' },
    });
    expect((await mounts.find('team-a/auth/kubernetes/role/x', Date.now() + 1000)).authMethod).to.equal(true);
    expect((await mounts.find('team-a/k8s/creds/x', Date.now() + 1000)).authMethod).to.equal(undefined);
    expect((await mounts.find('other/x', Date.now() + 1000)).authMethod).to.equal(true);
  });

  it('serves secrets engines only: no auth method, system, identity, cubbyhole or token type is in the list', () => {
    for (const type of [
      'approle',
      'token',
      'ns_token',
      'system',
      'ns_system',
      'identity',
      'ns_identity',
      'cubbyhole',
      'ns_cubbyhole',
      'userpass',
      'jwt',
      'cert',
      'kubernetes-auth',
    ]) {
      expect(SECRET_ENGINE_TYPES.has(type), type).to.equal(false);
    }
    for (const type of ['kv', 'database', 'pki', 'ssh', 'transit'])
      expect(SECRET_ENGINE_TYPES.has(type), type).to.equal(true);
  });
});
