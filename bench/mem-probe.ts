// Diagnostic preload for the memory scenario (not used by a normal run): started with
//   DSO_BENCH_NODE_ARGS="--expose-gc --require <repo>/build/bench/mem-probe.js"
// the plugin process writes, on SIGUSR2, one JSON line to $DSO_BENCH_PROBE_FILE with
// process.memoryUsage() and V8's heap spaces, before and after a full GC. It tells live
// objects (kept by the plugin) from garbage V8 has not collected yet and from memory the
// allocator keeps. It never reads or prints anything the plugin holds.
import * as fs from 'node:fs';
import * as v8 from 'node:v8';

const file = process.env.DSO_BENCH_PROBE_FILE;
const mib = (n: number) => Math.round((n / 2 ** 20) * 10) / 10;

function snapshot(): Record<string, unknown> {
  const m = process.memoryUsage();
  const spaces = Object.fromEntries(
    v8.getHeapSpaceStatistics().map((s) => [s.space_name, { size: mib(s.space_size), used: mib(s.space_used_size) }]),
  );
  return {
    rss: mib(m.rss),
    heapTotal: mib(m.heapTotal),
    heapUsed: mib(m.heapUsed),
    external: mib(m.external),
    arrayBuffers: mib(m.arrayBuffers),
    spaces,
  };
}

if (file) {
  process.on('SIGUSR2', () => {
    const before = snapshot();
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const after = gc ? snapshot() : undefined;
    fs.appendFileSync(file, `${JSON.stringify({ at: Date.now(), before, afterFullGc: after })}\n`);
  });
}
