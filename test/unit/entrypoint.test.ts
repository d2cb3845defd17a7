// `npm start` must run exactly what the managed plugin's rootfs runs (config.json's
// entrypoint): the same node flags (heap sizing) and the same main.js.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.join(__dirname, '..', '..', '..');

describe('entrypoint', () => {
  it("npm start runs node with the rootfs entrypoint's flags and dist/main.js", () => {
    const { entrypoint } = JSON.parse(fs.readFileSync(path.join(root, 'config.json'), 'utf8')) as {
      entrypoint: string[];
    };
    const { scripts } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(entrypoint[0]).to.equal('/usr/local/bin/node');
    expect(entrypoint[entrypoint.length - 1]).to.equal('/app/dist/main.js');
    expect(scripts.start).to.equal(['node', ...entrypoint.slice(1, -1), 'dist/main.js'].join(' '));
  });
});
