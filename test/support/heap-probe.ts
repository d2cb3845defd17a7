// What V8 made of a node process's flags once main.js is loaded: the tag its code caches are
// checked against (node's built-in cache is used only if it matches a flag-less node's) and the
// heap's sizes after enough short-lived garbage for the young generation to grow to its limit.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

interface HeapProbe {
  /** v8.cachedDataVersionTag(): V8's version and a hash of its flags. */
  cacheTag: number;
  heapLimitMiB: number;
  /** The new space's size (both semi-spaces) after the churn. */
  youngMiB: number;
}

const PROBE = `
if (process.argv[1]) require(process.argv[1]);
const v8 = require('node:v8');
let kept = [];
for (let i = 0; i < 3e6; i++) { kept.push({ i, s: 'x' + i }); if (kept.length > 20000) kept = []; }
const young = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
process.stdout.write(JSON.stringify({
  cacheTag: v8.cachedDataVersionTag(),
  heapLimitMiB: v8.getHeapStatistics().heap_size_limit / 2 ** 20,
  youngMiB: young.space_size / 2 ** 20,
}));`;

/** Runs `node` with `nodeArgs`, loads `mainJs` (not as the main module: nothing listens) if given. */
function probeHeap(node: string, nodeArgs: string[], mainJs?: string): HeapProbe {
  const out = execFileSync(node, [...nodeArgs, '-e', PROBE, ...(mainJs ? [path.resolve(mainJs)] : [])], {
    env: { PATH: process.env.PATH ?? '' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return JSON.parse(out) as HeapProbe;
}

/** The heap sizes (MiB) the entrypoint's flags ask for. */
function requestedHeap(nodeArgs: string[]): { semiSpaceMiB: number; oldSpaceMiB: number } {
  const value = (flag: string) => {
    const arg = nodeArgs.find((a) => a.startsWith(`${flag}=`));
    if (!arg) throw new Error(`the entrypoint has no ${flag}`);
    return Number(arg.slice(flag.length + 1));
  };
  return { semiSpaceMiB: value('--max-semi-space-size'), oldSpaceMiB: value('--max-old-space-size') };
}

/**
 * The checks of the unit and e2e suites, for one node binary and the main.js it runs: node's
 * built-in code cache is accepted (the same tag as without flags), and the heap has the sizes
 * the flags ask for, exactly as with the flags and nothing loaded.
 */
export function expectHeapFlagsKeptOutOfTheCacheTag(node: string, nodeArgs: string[], mainJs: string): void {
  const { semiSpaceMiB, oldSpaceMiB } = requestedHeap(nodeArgs);
  const flagless = probeHeap(node, []);
  const flagsOnly = probeHeap(node, nodeArgs);
  const plugin = probeHeap(node, nodeArgs, mainJs);
  expect(plugin.cacheTag, "the tag of node's built-in code cache").to.equal(flagless.cacheTag);
  expect(plugin.heapLimitMiB, 'heap limit').to.equal(flagsOnly.heapLimitMiB);
  expect(plugin.heapLimitMiB, 'heap limit').to.be.within(oldSpaceMiB, oldSpaceMiB + 4 * semiSpaceMiB);
  expect(plugin.youngMiB, 'young generation').to.equal(flagsOnly.youngMiB);
  expect(plugin.youngMiB, 'young generation').to.be.within(semiSpaceMiB, 2 * semiSpaceMiB);
}
