// The plugin, wired exactly as src/main.ts does, in this process: supertest drives its
// Express app, its logs are captured, its replies are kept for the leak scan.
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import * as fs from 'node:fs';
import * as path from 'node:path';
import request from 'supertest';
import { loadSettings } from '../../src/config/settings';
import { createLogger } from '../../src/log';
import { buildPlugin, Plugin, PluginDeps } from '../../src/wiring';
import { createApp } from '../../src/plugin/app';
import { tempDir } from './cleanup';
import type { GetSecretRequest, GetSecretReply } from '../../src/plugin/protocol';
import { StatusStore } from '../../src/status/store';
import { captureReply, captureStream } from './capture';
import { OpenBao, policyToken, workDir } from './openbao';

export interface TestPlugin {
  app: Express;
  plugin: Plugin;
  logs: string[];
  problems: string[];
  /** POSTs a GetSecret the way Docker does (no Content-Type) and decodes the reply. */
  get(body: GetSecretRequest): Promise<{ status: number; reply: GetSecretReply; value?: Buffer }>;
  stop(): void;
}

/**
 * Keeps the body of every reply the app sends (status, test-vault, rotate and GetSecret
 * alike, less a GetSecret's Value) for the leak scan, whichever route a test calls.
 */
function captureReplies(req: Request, res: Response, next: NextFunction): void {
  const chunks: Buffer[] = [];
  const keep = (chunk: unknown) => {
    if (chunk !== undefined && chunk !== null && typeof chunk !== 'function')
      chunks.push(Buffer.from(chunk as string | Buffer));
  };
  const write = res.write.bind(res) as (...args: unknown[]) => boolean;
  const end = res.end.bind(res) as (...args: unknown[]) => Response;
  res.write = ((chunk: unknown, ...rest: unknown[]) => (keep(chunk), write(chunk, ...rest))) as Response['write'];
  res.end = ((chunk?: unknown, ...rest: unknown[]) => {
    keep(chunk);
    captureReply(Buffer.concat(chunks).toString('utf8'));
    return end(chunk, ...rest);
  }) as Response['end'];
  next();
}

export function startTestPlugin(env: Record<string, string>, deps: PluginDeps = {}): TestPlugin {
  const { settings, problems } = loadSettings(env, path.join(workDir, 'no-such-dso.json'));
  const logs: string[] = [];
  const logger = createLogger(settings.logLevel, captureStream(logs));
  const plugin = buildPlugin(settings, problems, logger, deps);
  const app = express()
    .use(captureReplies)
    .use(
      createApp({
        driver: plugin.driver,
        logger,
        status: new StatusStore(),
        timeoutMs: settings.timeoutMs,
        describe: plugin.describe,
        testVault: plugin.testVault,
        rotate: plugin.rotate,
        compose: plugin.compose,
      }),
    );
  plugin.start();
  return {
    app,
    plugin,
    logs,
    problems,
    async get(body) {
      // A Buffer body without .set(): supertest then sends no Content-Type at all, like Docker.
      const res = await request(app)
        .post('/SecretProvider.GetSecret')
        .send(Buffer.from(JSON.stringify(body)));
      const reply = JSON.parse(res.text) as GetSecretReply;
      return {
        status: res.status,
        reply,
        value: reply.Value !== undefined ? Buffer.from(reply.Value, 'base64') : undefined,
      };
    },
    stop: () => plugin.stop(),
  };
}

let credentialDir: string | undefined;

/** A file holding `content` (mode 0600) in a private temp folder removed at exit. */
export function credentialFile(name: string, content: string): string {
  if (!credentialDir) {
    credentialDir = tempDir('dso-test-credentials-');
  }
  const file = path.join(credentialDir, name);
  fs.writeFileSync(file, content, { mode: 0o600 });
  return file;
}

/** Settings for token login to `bao` with a new token of the policy `name` (`policy`, HCL), kept in a file. */
export async function tokenLoginSettings(bao: OpenBao, name: string, policy: string): Promise<Record<string, string>> {
  return {
    VAULT_ADDR: bao.addr,
    VAULT_AUTH_METHOD: 'token',
    VAULT_TOKEN_FILE: credentialFile(`${name}-token`, await policyToken(bao, name, policy)),
  };
}
