// Shared pieces of the benchmark: a bounded closed-loop load generator, percentiles, the
// plugin as a real process (`node dist/main.js` on its own socket), and the two clients
// being compared: GetSecret over the Unix socket and a direct KV v2 read from OpenBao.
//
// Every loop here is bounded in count and in time. Nothing leaves the loopback interface.
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { repoRoot, workDir } from '../test/support/openbao';
import { pluginEntrypoint } from '../test/support/process';

export const benchDir = path.join(workDir, 'bench');

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

// --- statistics -------------------------------------------------------------------------

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function median(values: number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
}

export interface LoadResult {
  requests: number;
  errors: number;
  firstError?: string;
  wallMs: number;
  p50: number;
  p99: number;
  rps: number;
  /** Raw latencies in ms (kept so several rounds can be pooled). */
  samples: number[];
}

export function summarize(samples: number[], wallMs: number, errors: number, firstError?: string): LoadResult {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    requests: samples.length,
    errors,
    firstError,
    wallMs,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    rps: wallMs > 0 ? (samples.length / wallMs) * 1000 : 0,
    samples,
  };
}

/** Pools rounds of one configuration: latencies merged, throughput = all requests / all time. */
export function pool(results: LoadResult[]): LoadResult {
  const samples = results.flatMap((r) => r.samples);
  const wall = results.reduce((s, r) => s + r.wallMs, 0);
  const errors = results.reduce((s, r) => s + r.errors, 0);
  return summarize(samples, wall, errors, results.find((r) => r.firstError)?.firstError);
}

/**
 * Closed loop: `concurrency` workers each issue one request after the other until `count`
 * requests were started or `maxMs` passed. Latency is measured per request.
 */
export async function closedLoop(
  concurrency: number,
  count: number,
  maxMs: number,
  request: (i: number) => Promise<void>,
): Promise<LoadResult> {
  const samples: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let issued = 0;
  const start = nowMs();
  const end = start + maxMs;
  const worker = async () => {
    while (issued < count && nowMs() < end) {
      const i = issued++;
      const t0 = nowMs();
      try {
        await request(i);
        samples.push(nowMs() - t0);
      } catch (err) {
        errors++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return summarize(samples, nowMs() - start, errors, firstError);
}

// --- HTTP clients -----------------------------------------------------------------------

export interface Reply {
  status: number;
  body: Buffer;
}

export function httpRequest(options: http.RequestOptions, body?: Buffer, timeoutMs = 30_000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ ...options, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** The body Docker's leader sends for one task's secret: every field, no Content-Type. */
export function getSecretBody(secretName: string, ref: string, task = 1): Buffer {
  const taskId = `bt${task.toString(36).padStart(23, '0')}`;
  return Buffer.from(
    JSON.stringify({
      SecretName: secretName,
      SecretLabels: { 'dso.ref': ref },
      ServiceID: 'benchsvc0000000000000000000',
      ServiceName: 'bench',
      ServiceLabels: {},
      ServiceHostname: '',
      TaskID: taskId,
      TaskName: `bench.${task}.${taskId}`,
      TaskImage: 'dso-busybox:latest',
      NodeID: 'benchnode000000000000000000',
      ServiceEndpointSpec: { Mode: 'vip' },
    }),
  );
}

/** GetSecret over the plugin socket; resolves with the decoded value, rejects on anything but 200 + Value. */
export function pluginClient(socketPath: string, agent: http.Agent | false) {
  return async (body: Buffer): Promise<Buffer> => {
    const reply = await httpRequest(
      // Headers as Go's net/http sends them for Docker: no Content-Type.
      {
        socketPath,
        agent,
        method: 'POST',
        path: '/SecretProvider.GetSecret',
        headers: { 'Content-Length': String(body.length) },
      },
      body,
    );
    const parsed = JSON.parse(reply.body.toString('utf8')) as { Value?: string; Err?: string };
    if (reply.status !== 200 || !parsed.Value)
      throw new Error(`GetSecret HTTP ${reply.status}: ${parsed.Err ?? 'no value'}`);
    return Buffer.from(parsed.Value, 'base64');
  };
}

/** The same read the plugin makes (GET /v1/secret/data/<path>), straight to OpenBao. */
export function directClient(port: number, token: string, agent: http.Agent) {
  return async (apiPath: string): Promise<Record<string, unknown>> => {
    const reply = await httpRequest({
      host: '127.0.0.1',
      port,
      agent,
      method: 'GET',
      path: `/v1/${apiPath}`,
      headers: { 'X-Vault-Token': token, Accept: 'application/json' },
    });
    const parsed = JSON.parse(reply.body.toString('utf8')) as { data?: { data?: Record<string, unknown> } };
    if (reply.status !== 200 || !parsed.data?.data) throw new Error(`direct read HTTP ${reply.status}`);
    return parsed.data.data;
  };
}

// --- the plugin process -----------------------------------------------------------------

export interface PluginProc {
  socket: string;
  child: ChildProcess;
  pid: number;
  logFile: string;
  /** ms from spawn() to the first accepted connection on the socket. */
  listeningMs: number;
  stop(): Promise<void>;
}

/** Connects once; true when the socket accepted. */
function tryConnect(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * What the plugin processes of scenario 1 (and hop.ts) are given beside their Vault login, the
 * other scenarios running the plugin as configured by default. The host's dockerd is
 * a swarm manager here, so the plugin's rotation watcher polls the Engine API every
 * DSO_ROTATE_INTERVAL (60 s by default; 2 s after start the first time). Its second pass is
 * where node's HTTP client first meets a Unix-socket request after the Vault path has been
 * optimized: about 50 of node's network functions deoptimize at once (--trace-deopt), once per
 * process, and the few thousand requests after it pay for the recompilation. At 60 s that pass
 * fell in a measured row (distinct, c=1: CPU per round 2.45x the floor's against 1.4-1.9x);
 * at 2 s it falls in the process warm-up, and every later pass (each a handful of Engine API
 * calls) is counted in the plugin's CPU like any of its own work. (Not for the memory scenario:
 * a pass every 2 s while it idles would be work a plugin at its defaults does not do.)
 */
export const LATENCY_PLUGIN_SETTINGS: Record<string, string> = { DSO_ROTATE_INTERVAL: '2s' };

/**
 * The node flags of the managed plugin's entrypoint (config.json: node, flags, main.js), so the
 * plugin is measured as the rootfs runs it; DSO_BENCH_NODE_ARGS (even empty) replaces them.
 */
export const ENTRYPOINT_NODE_ARGS: string[] = pluginEntrypoint().slice(1, -1);

/**
 * The node binary of the plugin, the floor proxy and the bare listeners: the one running the
 * bench, unless DSO_BENCH_NODE names another (e.g. the rootfs's, plugin/build/cache/node-*-stripped/bin/node).
 */
export const PLUGIN_NODE = process.env.DSO_BENCH_NODE || process.execPath;

/**
 * The node flags the plugin process runs with: the entrypoint's, unless DSO_BENCH_NODE_ARGS
 * (or, for the A/B build, DSO_BENCH_COMPARE_NODE_ARGS) replaces them, even with nothing, for
 * experiments (e.g. --cpu-prof, --max-semi-space-size=2).
 */
export function pluginNodeArgs(variant: 'main' | 'compare' = 'main'): string[] {
  const given = variant === 'compare' ? process.env.DSO_BENCH_COMPARE_NODE_ARGS : process.env.DSO_BENCH_NODE_ARGS;
  return (given ?? ENTRYPOINT_NODE_ARGS.join(' ')).split(' ').filter(Boolean);
}

/**
 * Starts `node dist/main.js` with `env` on a fresh socket; its stdout/stderr (one JSON log
 * line per GetSecret) go to a file, not a pipe this process must drain.
 */
export function startPlugin(
  env: Record<string, string>,
  label: string,
  limitMs = 10_000,
  variant: 'main' | 'compare' = 'main',
): Promise<PluginProc> {
  // DSO_BENCH_DIST: the compiled tree to measure, default ./dist. With DSO_BENCH_COMPARE_DIST
  // (and DSO_BENCH_COMPARE_NODE_ARGS) a second one is measured beside it in the same run.
  const compare = variant === 'compare';
  const nodeArgs = pluginNodeArgs(variant);
  const dist =
    (compare ? process.env.DSO_BENCH_COMPARE_DIST : process.env.DSO_BENCH_DIST) ?? path.join(repoRoot, 'dist');
  const probe: Record<string, string> = process.env.DSO_BENCH_PROBE_FILE
    ? { DSO_BENCH_PROBE_FILE: process.env.DSO_BENCH_PROBE_FILE }
    : {};
  return startSocketProcess(
    () => [...nodeArgs, path.join(dist, 'main.js')],
    { ...env, ...probe },
    `plugin-${label}`,
    limitMs,
  );
}

/** The minimal proxy of floor-proxy.ts: the floor for a Node.js plugin. */
export function startFloorProxy(vaultPort: number, tokenFile: string): Promise<PluginProc> {
  return startSocketProcess(
    // DSO_BENCH_FLOOR_NODE_ARGS: node flags for the floor too (e.g. --cpu-prof, to compare profiles).
    (socket) => [
      ...(process.env.DSO_BENCH_FLOOR_NODE_ARGS ?? '').split(' ').filter(Boolean),
      path.join(__dirname, 'floor-proxy.js'),
      socket,
      String(vaultPort),
      tokenFile,
    ],
    {},
    'floor-proxy',
    10_000,
  );
}

/**
 * bare-listener.ts, started as the plugin is (same environment, `nodeArgs` before the file):
 * what node itself takes to listen, the floor of the cold-start scenario.
 */
export function startBareListener(nodeArgs: string[], label: string): Promise<PluginProc> {
  return startSocketProcess(() => [...nodeArgs, path.join(__dirname, 'bare-listener.js')], {}, label, 10_000);
}

async function startSocketProcess(
  args: (socket: string) => string[],
  env: Record<string, string>,
  label: string,
  limitMs: number,
): Promise<PluginProc> {
  fs.mkdirSync(benchDir, { recursive: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dso-bench-'));
  const socket = path.join(dir, 'dso.sock');
  const logFile = path.join(benchDir, `${label}.log`);
  const log = fs.openSync(logFile, 'w');
  const t0 = nowMs();
  const child = spawn(PLUGIN_NODE, args(socket), {
    env: { PATH: process.env.PATH ?? '', DSO_SOCKET: socket, DSO_CONFIG: path.join(dir, 'none.json'), ...env },
    stdio: ['ignore', log, log],
    cwd: benchDir,
  });
  fs.closeSync(log);
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  for (;;) {
    if (await tryConnect(socket)) break;
    if (exited) throw new Error(`${label} exited during start-up (see ${logFile})`);
    if (nowMs() - t0 > limitMs) {
      child.kill('SIGKILL');
      throw new Error(`${label}: socket did not accept within ${limitMs} ms (see ${logFile})`);
    }
    await sleep(1);
  }
  const listeningMs = nowMs() - t0;
  return {
    socket,
    child,
    pid: child.pid!,
    logFile,
    listeningMs,
    async stop() {
      if (!exited) {
        const gone = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        await Promise.race([gone, sleep(3000)]);
        if (!exited) child.kill('SIGKILL');
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** VmRSS and VmHWM of a process, in MiB. */
export function memoryOf(pid: number): { rssMiB: number; hwmMiB: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMiB: kb('VmRSS') / 1024, hwmMiB: kb('VmHWM') / 1024 };
}

/** CPU time (user + system) a process used so far, in ms (clock ticks of 10 ms). */
export function cpuMsOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Runs `work` for every item with at most `concurrency` at a time. */
export async function forEachLimited<T>(
  items: T[],
  concurrency: number,
  work: (item: T, i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await work(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}
