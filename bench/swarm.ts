// Scenario 5: a real Docker Engine in swarm mode. Time for a 20-replica service to reach 20
// running tasks with one DSO secret vs with one native Swarm secret, measured in the same
// run, alternating (native, dso, dso, native, ...) so that drift in machine load hits both.
//
// Everything created here is named with PREFIX (services, secrets) or is the plugin
// PLUGIN_NAME; nothing else in the engine is touched. The Engine API is used directly over
// /var/run/docker.sock (no CLI process per poll on a 2-core machine).
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '../test/support/openbao';
import { buildTokenPlugin, freshTokenDir } from '../test/e2e/docker';
import { benchDir, httpRequest, median, nowMs, sleep } from './lib';

export const PREFIX = 'dsobench';
export const PLUGIN_NAME = 'dso-bench';
const DOCKER_SOCK = '/var/run/docker.sock';
const IMAGE = process.env.DSO_BUSYBOX_IMAGE || 'dso-busybox:latest';

export interface SwarmRun {
  kind: 'native' | 'dso';
  ms: number;
  failedTasks: number;
}

export interface SwarmResult {
  replicas: number;
  runs: SwarmRun[];
  nativeMedianMs: number;
  dsoMedianMs: number;
  ratio: number;
  pluginBuildMs: number;
  /** Tasks started with the DSO secret in the measured runs (each asks the plugin once). */
  dsoTasks: number;
  vaultReads: number;
  dockerVersion: string;
}

async function api<T = any>(method: string, route: string, body?: unknown, timeoutMs = 60_000): Promise<T> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const reply = await httpRequest(
    {
      socketPath: DOCKER_SOCK,
      method,
      path: `/v1.41${route}`,
      agent: false,
      headers: payload ? { 'Content-Type': 'application/json', 'Content-Length': String(payload.length) } : {},
    },
    payload,
    timeoutMs,
  );
  const text = reply.body.toString('utf8');
  if (reply.status >= 300) throw new Error(`Docker API ${method} ${route}: HTTP ${reply.status} ${text.slice(0, 300)}`);
  return (text ? JSON.parse(text) : {}) as T;
}

function run(
  cmd: string,
  args: string[],
  timeoutMs: number,
  env?: NodeJS.ProcessEnv,
): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { timeout: timeoutMs, killSignal: 'SIGKILL', env: env ?? process.env, cwd: repoRoot, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : 1
          : 0;
        resolve({ code, out: `${stdout}${stderr}` });
      },
    );
  });
}

const filters = (f: Record<string, string[]>) => encodeURIComponent(JSON.stringify(f));

/** Removes the services and secrets named PREFIX* and waits for their containers to go. */
export async function cleanupSwarm(): Promise<void> {
  const services = await api<Array<{ ID: string; Spec: { Name: string } }>>(
    'GET',
    `/services?filters=${filters({ name: [PREFIX] })}`,
  ).catch(() => []);
  for (const s of services.filter((x) => x.Spec.Name.startsWith(PREFIX)))
    await api('DELETE', `/services/${s.ID}`).catch(() => undefined);
  const end = Date.now() + 90_000;
  while (Date.now() < end) {
    const left = await api<unknown[]>(
      'GET',
      `/containers/json?all=1&filters=${filters({ label: ['com.docker.swarm.service.name'] })}`,
    )
      .then((cs) =>
        (cs as Array<{ Labels: Record<string, string> }>).filter((c) =>
          (c.Labels['com.docker.swarm.service.name'] ?? '').startsWith(PREFIX),
        ),
      )
      .catch(() => []);
    if (left.length === 0) break;
    await sleep(500);
  }
  const secrets = await api<Array<{ ID: string; Spec: { Name: string } }>>(
    'GET',
    `/secrets?filters=${filters({ name: [PREFIX] })}`,
  ).catch(() => []);
  for (const s of secrets.filter((x) => x.Spec.Name.startsWith(PREFIX))) {
    for (let i = 0; i < 20; i++) {
      try {
        await api('DELETE', `/secrets/${s.ID}`);
        break;
      } catch {
        await sleep(500); // still referenced by a task being torn down
      }
    }
  }
}

export async function removePlugin(): Promise<void> {
  await run('docker', ['plugin', 'disable', '-f', PLUGIN_NAME], 60_000);
  await run('docker', ['plugin', 'rm', '-f', PLUGIN_NAME], 60_000);
  fs.rmSync(path.join(benchDir, 'etc-dso'), { recursive: true, force: true });
}

async function runningCount(serviceId: string): Promise<{ running: number; failed: number }> {
  const tasks = await api<Array<{ Status: { State: string }; DesiredState: string }>>(
    'GET',
    `/tasks?filters=${filters({ service: [serviceId] })}`,
  );
  let running = 0;
  let failed = 0;
  for (const t of tasks) {
    if (t.Status.State === 'running') running++;
    else if (['failed', 'rejected'].includes(t.Status.State)) failed++;
  }
  return { running, failed };
}

/** Creates the service and times it from the create call to `replicas` running tasks. */
async function timeService(
  name: string,
  secret: { id: string; name: string },
  replicas: number,
  limitMs: number,
): Promise<SwarmRun & { error?: string }> {
  const t0 = nowMs();
  const created = await api<{ ID: string }>('POST', '/services/create', {
    Name: name,
    Labels: { 'dso-bench': '1' },
    TaskTemplate: {
      ContainerSpec: {
        Image: IMAGE,
        Command: ['sleep', '3600'],
        StopGracePeriod: 1_000_000_000,
        Secrets: [
          {
            File: { Name: 'bench_secret', UID: '0', GID: '0', Mode: 0o444 },
            SecretID: secret.id,
            SecretName: secret.name,
          },
        ],
      },
      RestartPolicy: { Condition: 'on-failure', Delay: 1_000_000_000, MaxAttempts: 3 },
    },
    Mode: { Replicated: { Replicas: replicas } },
  });
  let failed = 0;
  for (;;) {
    const state = await runningCount(created.ID);
    failed = state.failed;
    if (state.running >= replicas) break;
    if (nowMs() - t0 > limitMs)
      return {
        kind: 'native',
        ms: NaN,
        failedTasks: failed,
        error: `only ${state.running}/${replicas} running after ${limitMs} ms`,
      };
    await sleep(100);
  }
  const ms = nowMs() - t0;
  await api('DELETE', `/services/${created.ID}`);
  // Wait until its containers are gone, so the next measurement starts from a quiet engine.
  const end = Date.now() + 90_000;
  while (Date.now() < end) {
    const cs = await api<Array<{ Labels: Record<string, string> }>>(
      'GET',
      `/containers/json?all=1&filters=${filters({ label: [`com.docker.swarm.service.name=${name}`] })}`,
    );
    if (cs.length === 0) break;
    await sleep(300);
  }
  return { kind: 'native', ms, failedTasks: failed };
}

export interface SwarmOptions {
  baoAddr: string;
  token: string;
  secretRef: string;
  replicas: number;
  rounds: number;
  /** How many GetSecret calls / Vault reads the plugin made (from its status route / the audit log). */
  countVaultReads: () => number;
  log: (msg: string) => void;
}

export async function swarmScenario(o: SwarmOptions): Promise<SwarmResult> {
  const up = await run('bash', [path.join(repoRoot, 'scripts', 'docker-up.sh')], 300_000);
  if (up.code !== 0) throw new Error(`scripts/docker-up.sh failed: ${up.out.trim().split('\n').slice(-5).join(' | ')}`);
  const version = await api<{ Version: string }>('GET', '/version');
  await cleanupSwarm();

  // The plugin, configured for the bench's OpenBao (host network: 127.0.0.1 is the host's).
  const etcDso = path.join(benchDir, 'etc-dso');
  freshTokenDir(etcDso, o.token);
  o.log(`building and enabling plugin ${PLUGIN_NAME} (plugin/build.sh)`);
  const b0 = nowMs();
  await buildTokenPlugin(PLUGIN_NAME, etcDso, o.baoAddr, [], {
    // Package the dist/ this run built and measured, never recompile src/ behind its back.
    env: { ...process.env, DSO_DIST_DIR: path.join(repoRoot, 'dist') },
    timeoutMs: 600_000,
  });
  const pluginBuildMs = nowMs() - b0;

  const dsoSecret = await api<{ ID: string }>('POST', '/secrets/create', {
    Name: `${PREFIX}_dso`,
    Labels: { 'dso.ref': o.secretRef },
    Driver: { Name: PLUGIN_NAME },
  });
  const nativeSecret = await api<{ ID: string }>('POST', '/secrets/create', {
    Name: `${PREFIX}_native`,
    Data: Buffer.from('native-bench-value').toString('base64'),
  });

  // Warm-up: one service of each kind (first container start, plugin's first login).
  o.log('swarm warm-up (one replica of each kind)');
  await timeService(`${PREFIX}-warm-native`, { id: nativeSecret.ID, name: `${PREFIX}_native` }, 1, 120_000);
  await timeService(`${PREFIX}-warm-dso`, { id: dsoSecret.ID, name: `${PREFIX}_dso` }, 1, 120_000);

  const readsBefore = o.countVaultReads();
  const runs: SwarmRun[] = [];
  // ABBA ordering: native, dso, dso, native, native, dso, ...
  const order: Array<'native' | 'dso'> = [];
  for (let r = 0; r < o.rounds; r++)
    order.push(...((r % 2 === 0 ? ['native', 'dso'] : ['dso', 'native']) as Array<'native' | 'dso'>));
  for (const [i, kind] of order.entries()) {
    const secret =
      kind === 'dso' ? { id: dsoSecret.ID, name: `${PREFIX}_dso` } : { id: nativeSecret.ID, name: `${PREFIX}_native` };
    const result = await timeService(`${PREFIX}-${kind}-${i}`, secret, o.replicas, 240_000);
    if (result.error) throw new Error(`${kind} service: ${result.error}`);
    runs.push({ ...result, kind });
    o.log(`  ${kind}: ${o.replicas} running in ${result.ms.toFixed(0)} ms`);
  }
  const vaultReads = o.countVaultReads() - readsBefore;
  const nativeMedianMs = median(runs.filter((r) => r.kind === 'native').map((r) => r.ms));
  const dsoMedianMs = median(runs.filter((r) => r.kind === 'dso').map((r) => r.ms));
  return {
    replicas: o.replicas,
    runs,
    nativeMedianMs,
    dsoMedianMs,
    ratio: dsoMedianMs / nativeMedianMs,
    pluginBuildMs,
    dsoTasks: runs.filter((r) => r.kind === 'dso').length * o.replicas,
    vaultReads,
    dockerVersion: version.Version,
  };
}
