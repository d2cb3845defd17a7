// Diagnostics for one request's cost (not part of `make bench`): the plugin and the floor
// proxy side by side at concurrency 1, with the CPU time of each thread of each process and,
// with --strace, the system calls per request (strace -c -f attached over the measured
// requests). Interleaved rounds, one OpenBao, the same bodies as bench/run.ts.
//
// With --gc, every process runs with --trace-gc-nvp and the young-generation bytes it allocated
// per request and its GC pauses are printed: figures that machine noise does not move, for A/B
// runs of allocation changes (over each process's whole life, warm-up included).
//
// Usage: node build/bench/hop.js [--variant=same|distinct] [--n=3000] [--rounds=4] [--strace] [--gc]
//        DSO_BENCH_DIST / DSO_BENCH_NODE_ARGS / DSO_BENCH_COMPARE_DIST / DSO_BENCH_COMPARE_NODE_ARGS as in run.ts.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { removeAtExit } from '../test/support/cleanup';
import { startOpenBao } from '../test/support/openbao';
import {
  benchDir,
  closedLoop,
  ENTRYPOINT_NODE_ARGS,
  getSecretBody,
  LATENCY_PLUGIN_SETTINGS,
  pluginClient,
  PluginProc,
  sleep,
  startFloorProxy,
  startPlugin,
} from './lib';

const { values } = parseArgs({
  options: {
    variant: { type: 'string', default: 'distinct' },
    n: { type: 'string', default: '3000' },
    rounds: { type: 'string', default: '4' },
    strace: { type: 'boolean', default: false },
    perf: { type: 'boolean', default: false },
    gc: { type: 'boolean', default: false },
    concurrency: { type: 'string', default: '1' },
    /** More builds beside DSO_BENCH_DIST: NAME=DIR,NAME=DIR (each run with DSO_BENCH_COMPARE_NODE_ARGS or the entrypoint's flags). */
    dists: { type: 'string', default: '' },
    warmup: { type: 'string', default: '1000' },
  },
});
const N = Number(values.n);
const ROUNDS = Number(values.rounds);
const C = Number(values.concurrency);

/**
 * Each thread of a process: its CPU ms by thread name (the scheduler's run time from
 * schedstat, ns, not 10 ms ticks), and its context switches (voluntary + involuntary:
 * wake-ups, roughly), the main thread apart from the others.
 */
function threadStats(pid: number): { cpu: Map<string, number>; switches: Map<string, number> } {
  const cpu = new Map<string, number>();
  const switches = new Map<string, number>();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    const dir = `/proc/${pid}/task/${tid}`;
    let name: string;
    let ns: number;
    let status: string;
    try {
      name = fs.readFileSync(`${dir}/comm`, 'utf8').trim();
      ns = Number(fs.readFileSync(`${dir}/schedstat`, 'utf8').split(' ')[0]);
      status = fs.readFileSync(`${dir}/status`, 'utf8');
    } catch {
      continue;
    }
    const main = tid === String(pid);
    const key = main ? 'main' : name;
    cpu.set(key, (cpu.get(key) ?? 0) + ns / 1e6);
    let n = 0;
    for (const m of status.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)$/gm)) n += Number(m[1]);
    const group = main ? 'main' : 'others';
    switches.set(group, (switches.get(group) ?? 0) + n);
  }
  return { cpu, switches };
}

/**
 * What --trace-gc-nvp wrote to a log: the bytes allocated between collections (each one's heap
 * size before it, less the size after the one before), the pauses, and the bytes promoted.
 */
function gcFigures(logFile: string): {
  allocated: number;
  pauseMs: number;
  promoted: number;
  scavenges: number;
  full: number;
} {
  const figures = { allocated: 0, pauseMs: 0, promoted: 0, scavenges: 0, full: 0 };
  let after: number | undefined;
  for (const line of fs.readFileSync(logFile, 'utf8').split('\n')) {
    const kind = / gc=(\w+) /.exec(line)?.[1];
    if (!kind) continue;
    const field = (name: string) => Number(new RegExp(` ${name}=([\\d.]+)`).exec(line)?.[1] ?? 0);
    if (after !== undefined) figures.allocated += Math.max(0, field('total_size_before') - after);
    after = field('total_size_after');
    figures.pauseMs += field('pause');
    figures.promoted += field('promoted');
    if (kind === 's') figures.scavenges++;
    else figures.full++;
  }
  return figures;
}

/** strace -c -f attached to pid until stop() is called: the summary table's rows. */
function straceCount(pid: number, label: string) {
  const file = path.join(benchDir, `strace-${label}.txt`);
  const child = spawn('strace', ['-c', '-f', '-o', file, '-p', String(pid)], { stdio: 'ignore' });
  return {
    ready: sleep(500),
    async stop(): Promise<string> {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGINT');
      await gone;
      return fs.readFileSync(file, 'utf8');
    },
  };
}

async function main() {
  const bao = await startOpenBao();
  try {
    await bao.api('PUT', 'sys/policies/acl/hop', {
      policy: 'path "secret/data/bench/*" { capabilities = ["read"] }',
    });
    const created = await bao.api('POST', 'auth/token/create', { policies: ['hop'], ttl: '2h' });
    const tokenFile = removeAtExit(path.join(benchDir, 'hop-token'));
    fs.mkdirSync(benchDir, { recursive: true });
    fs.writeFileSync(tokenFile, created.auth.client_token as string, { mode: 0o600 });
    const paths = Array.from({ length: 1000 }, (_, i) => `bench/l1/${i}`);
    for (let i = 0; i < paths.length; i += 50)
      await Promise.all(
        paths
          .slice(i, i + 50)
          .map((p, j) => bao.api('POST', `secret/data/${p}`, { data: { password: `v-${i + j}-xxxxxxxxxxxxxxxx` } })),
      );
    await bao.api('POST', 'secret/data/bench/same', { data: { password: 'same-xxxxxxxxxxxxxxxxxxxx' } });
    if (values.gc) {
      // Each process's flags as they would be, plus the GC trace (written to its log file).
      const plus = (flags: string | undefined, fallback: string) => `${flags ?? fallback} --trace-gc-nvp`;
      process.env.DSO_BENCH_NODE_ARGS = plus(process.env.DSO_BENCH_NODE_ARGS, ENTRYPOINT_NODE_ARGS.join(' '));
      // Only where a second build runs: set alone, these flags would start one.
      if (process.env.DSO_BENCH_COMPARE_DIST || process.env.DSO_BENCH_COMPARE_NODE_ARGS || values.dists)
        process.env.DSO_BENCH_COMPARE_NODE_ARGS = plus(
          process.env.DSO_BENCH_COMPARE_NODE_ARGS,
          ENTRYPOINT_NODE_ARGS.join(' '),
        );
      process.env.DSO_BENCH_FLOOR_NODE_ARGS = plus(process.env.DSO_BENCH_FLOOR_NODE_ARGS, '');
    }
    const env = {
      VAULT_ADDR: bao.addr,
      VAULT_AUTH_METHOD: 'token',
      VAULT_TOKEN_FILE: tokenFile,
      ...LATENCY_PLUGIN_SETTINGS,
    };
    const targets: Array<[string, PluginProc]> = [
      ['floor', await startFloorProxy(bao.port, tokenFile)],
      ['plugin', await startPlugin(env, 'hop')],
    ];
    if (process.env.DSO_BENCH_COMPARE_DIST || process.env.DSO_BENCH_COMPARE_NODE_ARGS)
      targets.push(['compare', await startPlugin(env, 'hop-compare', 10_000, 'compare')]);
    for (const entry of values.dists.split(',').filter(Boolean)) {
      const [name, dir] = entry.split('=');
      process.env.DSO_BENCH_COMPARE_DIST = path.resolve(dir);
      targets.push([name, await startPlugin(env, `hop-${name}`, 10_000, 'compare')]);
    }
    const bodies =
      values.variant === 'same'
        ? [getSecretBody('bench_same', 'dso://secret/data/bench/same#password')]
        : paths.map((p, i) => getSecretBody(`bench_l1_${i}`, `dso://secret/data/${p}#password`, i));
    const clients = targets.map(([, p]) => pluginClient(p.socket, new http.Agent({ keepAlive: true, maxSockets: C })));
    const served = targets.map(() => 0);
    const run = async (k: number, n: number, offset: number) => {
      const res = await closedLoop(
        C,
        n,
        60_000,
        async (i) => void (await clients[k](bodies[(i + offset) % bodies.length])),
      );
      served[k] += res.requests;
      return res;
    };
    for (let k = 0; k < targets.length; k++) if (Number(values.warmup) > 0) await run(k, Number(values.warmup), 0);
    const cpu = targets.map(() => new Map<string, number>());
    const switches = targets.map(() => new Map<string, number>());
    const bao0 = targets.map(() => 0);
    const wall = targets.map(() => 0);
    const p50s = targets.map((): number[] => []);
    const counts = targets.map(() => 0);
    const roundCpu = targets.map((): number[] => []);
    for (let r = 0; r < ROUNDS; r++) {
      const order = targets.map((_, k) => k);
      if (r % 2 === 1) order.reverse();
      for (const k of order) {
        const before = threadStats(targets[k][1].pid);
        const baoBefore = threadStats(bao.process.pid!).cpu;
        const res = await run(k, N, 97 * (r + 1));
        const afterStats = threadStats(targets[k][1].pid);
        const after = afterStats.cpu;
        for (const [name, n] of afterStats.switches)
          switches[k].set(name, (switches[k].get(name) ?? 0) + n - (before.switches.get(name) ?? 0));
        let spent = 0;
        for (const [name, ms] of after) {
          cpu[k].set(name, (cpu[k].get(name) ?? 0) + ms - (before.cpu.get(name) ?? 0));
          spent += ms - (before.cpu.get(name) ?? 0);
        }
        roundCpu[k].push((spent * 1000) / res.requests);
        let b = 0;
        for (const [name, ms] of threadStats(bao.process.pid!).cpu) b += ms - (baoBefore.get(name) ?? 0);
        bao0[k] += b;
        wall[k] += res.wallMs;
        counts[k] += res.requests;
        p50s[k].push(res.p50);
      }
    }
    for (let k = 0; k < targets.length; k++) {
      const per = (ms: number) => ((ms * 1000) / counts[k]).toFixed(0);
      const total = [...cpu[k].values()].reduce((a, b) => a + b, 0);
      const threads = [...cpu[k].entries()]
        .filter(([, ms]) => ms > 0)
        .map(([name, ms]) => `${name} ${per(ms)}`)
        .join(', ');
      console.log(
        `${targets[k][0].padEnd(10)} ${per(total)} µs/req (${threads}); OpenBao ${per(bao0[k])} µs/req; ` +
          `${((counts[k] / wall[k]) * 1000).toFixed(0)} req/s; p50 per round ${p50s[k].map((p) => p.toFixed(3)).join(' ')}; ` +
          `CPU µs/req per round ${roundCpu[k].map((x) => x.toFixed(0)).join(' ')}; context switches per request ` +
          [...switches[k].entries()].map(([name, n]) => `${name} ${(n / counts[k]).toFixed(2)}`).join(', '),
      );
    }
    if (values.strace) {
      for (let k = 0; k < targets.length; k++) {
        const s = straceCount(targets[k][1].pid, targets[k][0]);
        await s.ready;
        const res = await run(k, N, 13);
        const table = await s.stop();
        console.log(`--- ${targets[k][0]}: strace -c -f over ${res.requests} requests`);
        for (const line of table.split('\n')) {
          const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$/.exec(line);
          if (m) console.log(`  ${m[2].padEnd(20)} ${(Number(m[1]) / res.requests).toFixed(2)} per request`);
        }
      }
    }
    if (values.perf) {
      // Run the targets with --perf-basic-prof (DSO_BENCH_NODE_ARGS, DSO_BENCH_FLOOR_NODE_ARGS) for JS names.
      for (let k = 0; k < targets.length; k++) {
        const file = path.join(benchDir, `perf-${targets[k][0]}.data`);
        const child = spawn('perf', ['record', '-F', '4999', '-g', '-o', file, '-p', String(targets[k][1].pid)], {
          stdio: 'ignore',
        });
        await sleep(500);
        const res = await run(k, N, 29);
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGINT');
        await gone;
        console.log(`--- ${targets[k][0]}: perf record over ${res.requests} requests: ${file}`);
      }
    }
    for (const [, p] of targets) await p.stop();
    if (values.gc) {
      for (let k = 0; k < targets.length; k++) {
        const g = gcFigures(targets[k][1].logFile);
        console.log(
          `${targets[k][0].padEnd(10)} allocated ${(g.allocated / 1024 / served[k]).toFixed(1)} KB/req; GC pauses ` +
            `${((g.pauseMs * 1000) / served[k]).toFixed(1)} µs/req (${g.scavenges} scavenges, ${g.full} full); ` +
            `promoted ${(g.promoted / served[k]).toFixed(0)} B/req; over ${served[k]} requests, warm-up included`,
        );
      }
    }
  } finally {
    await bao.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
