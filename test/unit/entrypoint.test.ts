// `npm start` must run exactly what the managed plugin's rootfs runs (config.json's
// entrypoint): the same node flags (heap sizing) and the same main.js. Those flags must size
// the heap without costing node its built-in code cache (src/heap-flags.ts).
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expectHeapFlagsKeptOutOfTheCacheTag } from '../support/heap-probe';
import { pluginEntrypoint } from '../support/process';

const root = path.join(__dirname, '..', '..', '..');
const entrypoint = pluginEntrypoint();

describe('entrypoint', () => {
  it("npm start runs node with the rootfs entrypoint's flags and dist/main.js", () => {
    const { scripts } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(entrypoint[0]).to.equal('/usr/local/bin/node');
    expect(entrypoint[entrypoint.length - 1]).to.equal('/app/dist/main.js');
    expect(scripts.start).to.equal(['node', ...entrypoint.slice(1, -1), 'dist/main.js'].join(' '));
  });

  it("sizes the heap with the entrypoint's flags, and node still uses its built-in code cache", function () {
    this.timeout(60_000);
    // This node (the host's); test/e2e/plugin.test.ts checks the rootfs's node the same way.
    expectHeapFlagsKeptOutOfTheCacheTag(
      process.execPath,
      entrypoint.slice(1, -1),
      path.join(__dirname, '..', '..', 'src', 'main.js'),
    );
  });
});
