// Dynamic database credentials end to end: a 2-replica service in a real swarm gets a
// PostgreSQL user per task through the managed plugin, each user logs in with the values
// found in /run/secrets, and `docker service rm` leaves no DSO-created role behind.
import { expect } from 'chai';
import * as path from 'node:path';
import { secret } from '../support/capture';
import { OpenBao, policyToken, startOpenBao, workDir } from '../support/openbao';
import { configureDatabaseEngine, Postgres, sharedPostgres } from '../support/postgres';
import {
  createTokenPlugin,
  docker,
  driverSecretArgs,
  engineReady,
  readInContainer,
  removeTokenPlugin,
  serviceContainers,
  serviceCreateArgs,
  waitFor,
} from './docker';
import { dynamicPolicy } from '../support/policies';

const PREFIX = 'dsodyn';
const PLUGIN = 'dso-e2e-dyn';
const ETC_DSO = path.join(workDir, 'e2e-dyn', 'etc-dso');
/** The bound README states for revocation after a task is gone (reaper every 5 s). */
const REVOCATION_BOUND_MS = 15_000;

describe('e2e: database credentials per task in a real swarm', function () {
  this.timeout(300_000);
  let bao: OpenBao;
  let pg: Postgres;

  before(async function () {
    this.timeout(600_000);
    await engineReady(PREFIX);
    pg = sharedPostgres();
    bao = await startOpenBao({ audit: false });
    await configureDatabaseEngine(bao.api, pg, { role: 'e2e', defaultTtl: '1h', maxTtl: '2h' });
    const token = await policyToken(bao, 'dso-e2e-dyn', dynamicPolicy(['database/creds/e2e']), '2h');
    await createTokenPlugin(PLUGIN, ETC_DSO, token, bao.addr);
  });

  after(async function () {
    this.timeout(180_000);
    await removeTokenPlugin(PLUGIN, ETC_DSO, PREFIX);
    if (bao) await bao.stop();
  });

  it('gives each of 2 replicas its own PostgreSQL user, and removes them when the service is removed', async () => {
    const service = `${PREFIX}-api`;
    for (const field of ['username', 'password']) {
      await docker(driverSecretArgs(PLUGIN, `${PREFIX}-db-${field}`, [`dso.ref=dso://database/creds/e2e#${field}`]));
    }
    await docker(serviceCreateArgs(service, [`${PREFIX}-db-username`, `${PREFIX}-db-password`], ['--replicas', '2']));
    const containers = await waitFor('2 running tasks', 120_000, async () => {
      const ids = await serviceContainers(service);
      return ids.length === 2 ? ids : undefined;
    });

    const users: string[] = [];
    for (const container of containers) {
      const user = (await readInContainer(container, `/run/secrets/${PREFIX}-db-username`)).toString();
      const password = secret((await readInContainer(container, `/run/secrets/${PREFIX}-db-password`)).toString());
      expect(user).to.match(/^dso_e2e_/);
      expect(
        await pg.canLogin(user, password),
        'the user and password of one task belong together and log in',
      ).to.equal(true);
      users.push(user);
    }
    expect(users[0]).not.to.equal(users[1]);
    expect(await pg.roles('dso\\_e2e\\_%')).to.include.members(users);

    await docker(['service', 'rm', service]);
    const removedAt = Date.now();
    await waitFor(`the roles to be dropped within ${REVOCATION_BOUND_MS} ms`, REVOCATION_BOUND_MS, async () => {
      const left = (await pg.roles('dso\\_e2e\\_%')).filter((r) => users.includes(r));
      return left.length === 0 ? true : undefined;
    });
    expect(Date.now() - removedAt).to.be.below(REVOCATION_BOUND_MS);
  });
});
