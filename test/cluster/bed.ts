// Helpers for the cluster suites: the three node engines scripts/cluster-bed.sh builds
// (each its own dockerd in a network namespace), the registry the plugin is installed
// from, and the few questions every suite asks (who leads, where a service's containers
// run, what they read). Command errors carry the command line and stderr, never a value:
// callers never put values on a command line.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '../support/openbao';
import {
  freshTokenDir,
  lines,
  removeByPrefix as removeFromSwarm,
  run,
  serviceCreateArgs,
  waitFor,
} from '../e2e/docker';

export const NODES = [1, 2, 3] as const;
export type NodeNo = (typeof NODES)[number];
/** The host's address on the bed's bridge: OpenBao and the registry listen there. */
export const HOST_IP = '10.213.7.1';
export const REGISTRY = `${HOST_IP}:5213`;
export const REPOSITORY = `${REGISTRY}/dso/vault`;
export const VERSION: string = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')).version;
/** Where each node's plugins get their /etc/dso: memory, so no token reaches the disk. */
export const SHM = '/dev/shm/dsoc';
export const LOG_DIR = '/var/lib/dsoc/logs';

export const sock = (n: NodeNo) => `/run/dsoc/n${n}.sock`;
const BED = path.join(repoRoot, 'scripts', 'cluster-bed.sh');

/** Nodes whose dockerd the suites stopped (and have not started again). */
export const stopped = new Set<NodeNo>();
export const liveNodes = (): NodeNo[] => NODES.filter((n) => !stopped.has(n));

/** `docker -H <node> ...`, trimmed stdout; throws with stderr on failure. */
export async function dk(
  n: NodeNo,
  args: string[],
  opts: { timeoutMs?: number; cli?: string; input?: string } = {},
): Promise<string> {
  const res = await run(opts.cli ?? 'docker', ['-H', `unix://${sock(n)}`, ...args], {
    timeoutMs: opts.timeoutMs ?? 60_000,
    input: opts.input,
  });
  if (res.code !== 0)
    throw new Error(`docker -H node${n} ${args.join(' ')} failed (${res.code}): ${res.stderr.trim()}`);
  return res.stdout.toString('utf8').trim();
}

export async function dkQuiet(n: NodeNo, args: string[], timeoutMs = 60_000): Promise<boolean> {
  return (await run('docker', ['-H', `unix://${sock(n)}`, ...args], { timeoutMs })).code === 0;
}

/** scripts/cluster-bed.sh with its output shown only when it fails. */
export async function bed(...args: string[]): Promise<void> {
  const res = await run('bash', [BED, ...args], { timeoutMs: 300_000 });
  if (res.code !== 0) throw new Error(`cluster-bed.sh ${args.join(' ')} failed (${res.code}):\n${res.stderr.trim()}`);
}

export async function stopNode(n: NodeNo): Promise<void> {
  stopped.add(n);
  await bed('stop-node', String(n));
}

export async function startNode(n: NodeNo): Promise<void> {
  await bed('start-node', String(n));
  stopped.delete(n);
}

/** The node that leads the swarm now, as live nodes see it (undefined mid-election). */
export async function leader(): Promise<NodeNo | undefined> {
  for (const n of liveNodes()) {
    const out = await dk(n, ['node', 'inspect', 'self', '--format', '{{.ManagerStatus.Leader}}'], {
      timeoutMs: 15_000,
    }).catch(() => '');
    if (out === 'true') return n;
  }
  return undefined;
}

export interface Placed {
  node: NodeNo;
  id: string;
}

/** The running containers of `service` on every live node. */
export async function containersOf(service: string): Promise<Placed[]> {
  const out: Placed[] = [];
  for (const n of liveNodes()) {
    const ids = lines(
      await dk(n, ['ps', '-q', '--no-trunc', '--filter', `label=com.docker.swarm.service.name=${service}`], {
        timeoutMs: 15_000,
      }),
    );
    out.push(...ids.map((id) => ({ node: n, id })));
  }
  return out;
}

/** A file in a container as raw bytes. */
export async function readIn(c: Placed, file: string): Promise<Buffer> {
  const res = await run('docker', ['-H', `unix://${sock(c.node)}`, 'exec', c.id, 'cat', file], { timeoutMs: 15_000 });
  if (res.code !== 0) throw new Error(`reading ${file} in a container on node${c.node} failed: ${res.stderr.trim()}`);
  return res.stdout;
}

/** The task ID of a container (its label). */
export async function taskOf(c: Placed): Promise<string> {
  return dk(c.node, ['inspect', '--format', '{{index .Config.Labels "com.docker.swarm.task.id"}}', c.id]);
}

/**
 * Waits until exactly `replicas` containers of `service` run and every one reads `value` at
 * `file`. On timeout the error says what the swarm says of the nodes and of the service's
 * tasks (states and errors, never a value), so that a failed run explains itself.
 */
export async function allRead(
  service: string,
  file: string,
  value: Buffer,
  replicas: number,
  timeoutMs: number,
): Promise<Placed[]> {
  let seen: Placed[] = [];
  let wrong = 0;
  const wait = waitFor(
    `${replicas} tasks of ${service} reading the expected value`,
    timeoutMs,
    async () => {
      const cs = (seen = await containersOf(service));
      if (cs.length !== replicas) return undefined;
      wrong = 0;
      for (const c of cs) {
        const read = await readIn(c, file).catch(() => undefined);
        if (!read || !read.equals(value)) wrong++;
      }
      return wrong === 0 ? cs : undefined;
    },
    300,
  ).catch((err: Error) => {
    const where = seen.map((c) => `n${c.node}`).join(', ') || 'none';
    err.message += `\n  containers seen on live nodes (${liveNodes().join(', ')}): ${where}; ${wrong} without the expected value`;
    throw err;
  });
  return explained([service], wait);
}

/** `wait`, and should it fail, its error followed by what the swarm says of its nodes and of `services`. */
export async function explained<T>(services: string[], wait: Promise<T>): Promise<T> {
  try {
    return await wait;
  } catch (err) {
    (err as Error).message += `\n${await swarmReport(...services)}`;
    throw err;
  }
}

/**
 * The swarm's own view, for failure messages: each node (bed number, state, manager
 * reachability, leader) and, for each of `services`, its latest tasks (node, desired and
 * current state, error). Asked of the first live node that lists the nodes (one just restarted
 * may not answer yet); an answer none can give is said as such.
 */
export async function swarmReport(...services: string[]): Promise<string> {
  const out: string[] = [];
  let n = liveNodes()[0];
  try {
    let ids: string[] | undefined;
    for (const live of liveNodes()) {
      n = live;
      ids = await dk(n, ['node', 'ls', '-q'], { timeoutMs: 15_000 }).then(lines, () => undefined);
      if (ids) break;
    }
    if (!ids) throw new Error('no live node lists the nodes');
    const nodes = lines(
      await dk(
        n,
        [
          'node',
          'inspect',
          '--format',
          '{{.ID}} {{index .Spec.Labels "dsoc"}} {{.Status.State}} {{if .ManagerStatus}}{{.ManagerStatus.Reachability}}{{if .ManagerStatus.Leader}} leader{{end}}{{end}}',
          ...ids,
        ],
        { timeoutMs: 15_000 },
      ),
    );
    const label = new Map(nodes.map((l) => [l.split(' ')[0], l.split(' ')[1]]));
    out.push(`  nodes: ${nodes.map((l) => l.split(' ').slice(1).join(' ')).join('; ')}`);
    for (const service of services) {
      const tasks = lines(await dk(n, ['service', 'ps', '-q', '--no-trunc', service], { timeoutMs: 15_000 })).slice(
        0,
        6,
      );
      const states = tasks.length
        ? lines(
            await dk(
              n,
              [
                'inspect',
                '--type',
                'task',
                '--format',
                '{{.NodeID}}|{{.DesiredState}}|{{.Status.State}}|{{.Status.Err}}',
                ...tasks,
              ],
              { timeoutMs: 15_000 },
            ),
          )
        : [];
      out.push(`  tasks of ${service} (latest first):`);
      for (const t of states) {
        const [node, desired, state, error] = t.split('|');
        out.push(`    ${label.get(node) ?? node}: desired ${desired}, ${state}${error ? `: ${error}` : ''}`);
      }
      if (!states.length) out.push('    none');
    }
  } catch (err) {
    out.push(`  (node ${n} could not say: ${(err as Error).message})`);
  }
  if (services.length) out.push(...recentProblems());
  return out.join('\n');
}

/**
 * The last few error lines of each node's dockerd log since its last start: the plugins'
 * own errors (JSON lines at level "error") and the engine's about secrets. The plugins log
 * no values (the leak scans check these logs and this output).
 */
function recentProblems(perNode = 4): string[] {
  const out: string[] = [];
  for (const n of NODES) {
    const file = path.join(LOG_DIR, `n${n}.log`);
    if (!fs.existsSync(file)) continue;
    const text = fs.readFileSync(file, 'utf8');
    const problems = text
      .slice(text.lastIndexOf('=== cluster-bed: starting dockerd'))
      .split('\n')
      .filter(
        (l) =>
          l.includes('\\"level\\":\\"error\\"') ||
          l.includes('\\"outcome\\":\\"error\\"') ||
          (l.includes('level=error') && /secret/i.test(l)),
      )
      .slice(-perNode)
      .map((l) => {
        const line = l.slice(Math.max(0, l.indexOf(' msg=') + 1));
        return `    n${n}: ${line.length > 360 ? `${line.slice(0, 360)}...` : line}`;
      });
    if (problems.length) out.push(`  last errors in node ${n}'s dockerd log:`, ...problems);
  }
  return out;
}

/**
 * The bed as every suite expects it at its start: every node's dockerd running (one a
 * suite stopped is started again) and three ready managers, one of them leading. So a
 * suite that ended early (a failed test or hook) does not leave the next one a node down.
 */
export async function ensureBed(timeoutMs = 180_000): Promise<void> {
  for (const n of [...stopped]) await startNode(n);
  let turn = 0;
  await explained(
    [],
    waitFor('3 ready managers, one leading', timeoutMs, async () => {
      // Each try asks the next node: one just restarted may hang until it has rejoined.
      const nodes = liveNodes();
      const n = nodes[turn++ % nodes.length];
      const out = await dk(n, ['node', 'ls', '--format', '{{.Status}} {{.ManagerStatus}}'], { timeoutMs: 15_000 });
      const ready = lines(out).filter((l) => /^Ready (Leader|Reachable)$/.test(l));
      return ready.length === 3 && ready.some((l) => l.endsWith('Leader')) ? true : undefined;
    }),
  );
}

export async function forceUpdate(n: NodeNo, service: string): Promise<number> {
  return Number(await dk(n, ['service', 'inspect', service, '--format', '{{.Spec.TaskTemplate.ForceUpdate}}']));
}

/** Node 2 is driven with Debian's docker 20.10 CLI where both CLIs must work (install, set, upgrade). */
export const DEBIAN_CLI = '/usr/bin/docker';
export const cliFor = (n: NodeNo) => (n === 2 ? DEBIAN_CLI : 'docker');

/**
 * Installs the plugin from the registry on node `n` as `alias`, token login with `token`
 * (written to a 0600 file in a 0700 directory in memory), talking to `vaultAddr` and to
 * its own node's engine. Replaces an earlier one of the same alias.
 */
export async function installPlugin(
  n: NodeNo,
  alias: string,
  ref: string,
  vaultAddr: string,
  token: string,
  settings: string[] = [],
): Promise<void> {
  const etc = path.join(SHM, `n${n}`, alias);
  freshTokenDir(etc, token);
  await dkQuiet(n, ['plugin', 'rm', '-f', alias], 60_000);
  await dk(
    n,
    [
      'plugin',
      'install',
      '--alias',
      alias,
      '--grant-all-permissions',
      ref,
      `VAULT_ADDR=${vaultAddr}`,
      'VAULT_AUTH_METHOD=token',
      'VAULT_TOKEN_FILE=/etc/dso/token',
      `etc-dso.source=${etc}`,
      `docker-sock.source=${sock(n)}`,
      ...settings,
    ],
    { timeoutMs: 180_000, cli: cliFor(n) },
  );
}

/** Host path of a plugin's socket on node `n`: dockerd puts every engine's under /run/docker/plugins. */
export async function pluginSocket(n: NodeNo, alias: string): Promise<string> {
  const id = await dk(n, ['plugin', 'inspect', '--format', '{{.Id}}', alias]);
  return `/run/docker/plugins/${id}/dso.sock`;
}

/** Removes the stacks, services and secrets whose names start with `prefix` (on a live manager). */
export function removeByPrefix(prefix: string): Promise<void> {
  const n = liveNodes()[0];
  return removeFromSwarm(prefix, { out: (args) => dk(n, args), ok: (args) => dkQuiet(n, args) });
}

/** `service create` with the options every cluster test uses: fast stop, start-first updates. */
export function serviceArgs(name: string, secrets: string[], replicas = 1, extra: string[] = []): string[] {
  return serviceCreateArgs(name, secrets, ['--update-order', 'start-first', '--replicas', String(replicas), ...extra]);
}

/**
 * `make plugin-push REGISTRY=<the bed's>` with DOCKER_HOST naming node 1's engine, as a
 * release would; `version` overrides package.json's (and then pushes that tag only).
 */
export async function pushPlugin(version?: string): Promise<void> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DOCKER_HOST: `unix://${sock(1)}`,
    ...(version ? { VERSION: version, PUSH_LATEST: '0' } : {}),
  };
  const res = await run('make', ['--no-print-directory', 'plugin-push', `REGISTRY=${REGISTRY}`], {
    env,
    timeoutMs: 600_000,
  });
  if (res.code !== 0) throw new Error(`make plugin-push failed (${res.code}):\n${res.stderr.trim()}`);
}
