#!/usr/bin/env node
// Entry point of the Docker CLI plugin `docker-dso` (installed by scripts/install-cli.sh into
// ~/.docker/cli-plugins/, so that `docker dso ...` runs it).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readVersion, runCli } from './cli';
import { Context, defaultConnect } from './context';
import { DockerClient, engineEndpoint, engineFor, processRunner } from './docker';
import { checkVaultHealth } from './health';

function readStdin(): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    process.stdin.on('data', (c: Buffer) => chunks.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks)));
    process.stdin.on('error', reject);
  });
}

/** plugin/build.sh of the DSO checkout this file was built in (dist/cli -> repository root). */
function findBuildScript(): string | undefined {
  for (let dir = __dirname, i = 0; i < 4; i++, dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'plugin', 'build.sh');
    if (fs.existsSync(candidate) && fs.existsSync(path.join(dir, 'config.json'))) return candidate;
  }
  return undefined;
}

export function makeContext(dockerArgs: string[]): Context {
  const runner = processRunner(process.env);
  return {
    io: {
      out: (t) => process.stdout.write(t),
      err: (t) => process.stderr.write(t),
      readStdin,
      stdinIsTTY: process.stdin.isTTY === true,
      env: process.env,
      cwd: process.cwd(),
    },
    docker: new DockerClient(runner, dockerArgs, () => engineFor(engineEndpoint(dockerArgs, process.env))),
    runner,
    connect: (plugin) => defaultConnect(plugin, process.env.DSO_PLUGIN_RUNTIME_DIR || undefined),
    health: checkVaultHealth,
    now: () => Date.now(),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    buildScript: findBuildScript(),
    version: readVersion(),
  };
}

if (require.main === module) {
  runCli(process.argv.slice(2), makeContext).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`docker dso: ${(err as Error)?.message ?? String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
