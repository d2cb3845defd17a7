// The plugin as Docker runs it: `node dist/main.js` (what `npm start` and the rootfs
// entrypoint run) in its own process, on its own socket, stdout captured.
import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { capture, captureReply } from './capture';
import { repoRoot } from './openbao';

export interface PluginProcess {
  socket: string;
  child: ChildProcess;
  output: () => string;
  /** Milliseconds from spawn until the socket accepted a connection. */
  startupMs: number;
  stop(): Promise<number | null>;
}

export interface RawReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP request over the Unix socket, headers exactly as given (none added). */
export function socketRequest(
  socket: string,
  method: string,
  route: string,
  body?: Buffer | string,
  headers: Record<string, string> = {},
): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        socketPath: socket,
        method,
        path: route,
        headers: { ...headers, ...(body !== undefined ? { 'Content-Length': Buffer.byteLength(body) } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          captureReply(text);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function waitForSocket(socket: string, child: ChildProcess, limitMs: number): Promise<void> {
  const end = Date.now() + limitMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`plugin exited with ${child.exitCode}`);
    try {
      await socketRequest(socket, 'POST', '/Plugin.Activate');
      return;
    } catch {
      if (Date.now() > end) throw new Error('plugin socket did not answer');
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

/**
 * The managed plugin's entrypoint (config.json: node, its flags, main.js), from the repository's
 * config.json or from another copy (the one plugin/build.sh writes beside the rootfs).
 */
export function pluginEntrypoint(configFile = path.join(repoRoot, 'config.json')): string[] {
  return (JSON.parse(fs.readFileSync(configFile, 'utf8')) as { entrypoint: string[] }).entrypoint;
}

export async function startPluginProcess(env: Record<string, string>): Promise<PluginProcess> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dso-plugin-'));
  const socket = path.join(dir, 'dso.sock');
  let out = '';
  const started = Date.now();
  // The node flags of the rootfs entrypoint, as `npm start` has them too.
  const flags = pluginEntrypoint().slice(1, -1);
  const child = spawn(process.execPath, [...flags, path.join(repoRoot, 'dist', 'main.js')], {
    env: { PATH: process.env.PATH ?? '', DSO_SOCKET: socket, DSO_CONFIG: path.join(dir, 'none.json'), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (chunk: Buffer) => {
    out += chunk.toString('utf8');
    capture(chunk.toString('utf8'));
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  await waitForSocket(socket, child, 10_000);
  const startupMs = Date.now() - started;
  return {
    socket,
    child,
    startupMs,
    output: () => out,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      fs.rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}
