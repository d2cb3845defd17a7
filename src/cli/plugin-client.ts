// The plugin's own routes on its socket: what `docker dso` knows about the plugin comes from
// here, not from guesses. Record types come from the plugin's own modules.
import * as http from 'node:http';
import * as path from 'node:path';
import type { ComposeDownReply, ComposeListReply, ComposeUpReply, ComposeUpRequest } from '../plugin/compose-protocol';
import type { RotationHealth, RotationReport } from '../rotation/watcher';
import type { FetchRecord } from '../status/store';
import type { VaultAddressStatus } from '../vault/client';
import type { TokenStatus as PluginTokenStatus } from '../vault/token';
import { CliError, EXIT } from './errors';

// The same shapes the plugin writes (a plugin status the CLI reads may come from an older
// plugin, so the CLI treats every field as possibly absent).
export type TokenStatus = Partial<PluginTokenStatus> & { loggedIn: boolean };
export type { FetchRecord };

export interface PluginStatus {
  version?: string;
  settings?: {
    vaultAddresses?: string[];
    namespace?: string | null;
    authMethod?: string;
    authMount?: string;
    timeoutMs?: number;
    pathTemplate?: string | null;
    allowedPaths?: string[];
    allowedWrites?: string[];
    rotate?: boolean;
    rotateIntervalMs?: number;
    logLevel?: string;
    tlsSkipVerify?: boolean;
  };
  problems?: string[];
  vault?: { activeAddress?: string; addresses?: Array<Partial<VaultAddressStatus> & { address: string }>; token?: TokenStatus };
  leases?: { held?: number };
  rotation?: { intervalMs?: number; default?: boolean; recent?: RotationReport[] } & Partial<RotationHealth>;
  secrets?: FetchRecord[];
  recent?: FetchRecord[];
}

export interface TestVaultResult {
  ok: boolean;
  stage?: 'settings' | 'login' | 'read';
  code?: string;
  error?: string;
  login?: { method?: string; mount?: string; ttlSeconds?: number; policies?: string[] };
  read?: { path?: string; field?: string; version?: number; bytes?: number };
}

export type { RotationReport };

export interface PluginApi {
  status(service?: string): Promise<PluginStatus>;
  testVault(reference?: string): Promise<TestVaultResult>;
  /** POST /DSO.Rotate; undefined when this plugin cannot rotate (no such route). */
  rotate(secret: string): Promise<RotationReport | undefined>;
  /** The plugin's runtime directory on this host (its socket's directory), where compose files live. */
  runtimeDir?: string;
  /** POST /DSO.ComposeUp: resolve a compose project's references into files on a tmpfs. */
  composeUp?(request: ComposeUpRequest): Promise<ComposeUpReply>;
  /** POST /DSO.ComposeDown: remove a project's files. */
  composeDown?(project: string): Promise<ComposeDownReply>;
  /** GET /DSO.Compose; undefined when this plugin serves no compose projects. */
  composeList?(project?: string): Promise<ComposeListReply | undefined>;
}

/** A refusal of a compose route, with the plugin's stable code (e.g. ERR_NOT_TMPFS). */
export class PluginRouteError extends CliError {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(EXIT.FAILURE, message);
  }
}

interface Reply {
  status: number;
  body: string;
}

export class PluginClient implements PluginApi {
  readonly runtimeDir: string;

  constructor(
    readonly socket: string,
    private readonly pluginName: string,
  ) {
    this.runtimeDir = path.dirname(socket);
  }

  private request(method: string, route: string, body: unknown, timeoutMs: number): Promise<Reply> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socket,
          method,
          path: route,
          timeout: timeoutMs,
          headers: payload === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', (err: NodeJS.ErrnoException) => reject(this.unreachable(err)));
      req.end(payload);
    });
  }

  private unreachable(err: NodeJS.ErrnoException): CliError {
    const name = this.pluginName;
    switch (err.code) {
      case 'EACCES':
      case 'EPERM':
        return new CliError(EXIT.PLUGIN, `permission denied on the plugin socket ${this.socket}`, 'run docker dso as root (e.g. sudo docker dso ...): plugin sockets belong to root');
      case 'ENOENT':
      case 'ECONNREFUSED':
        return new CliError(
          EXIT.PLUGIN,
          `the plugin ${name} does not answer on ${this.socket} (${err.code}); docker dso must run on the node where the plugin runs`,
          `see the plugin's log (dockerd's log, lines with plugin=<id>), then: docker plugin disable ${name} && docker plugin enable ${name}`,
        );
      case 'ETIMEDOUT':
        return new CliError(EXIT.PLUGIN, `the plugin ${name} did not answer on ${this.socket} in time`, `see the plugin's log; restart it: docker plugin disable -f ${name} && docker plugin enable ${name}`);
      default:
        return new CliError(EXIT.PLUGIN, `cannot talk to the plugin ${name} on ${this.socket}: ${err.code ?? err.message}`);
    }
  }

  private parse<T>(reply: Reply, route: string): T {
    try {
      return JSON.parse(reply.body) as T;
    } catch {
      throw new CliError(EXIT.PLUGIN, `the plugin ${this.pluginName} answered ${route} with something that is not JSON (HTTP ${reply.status})`);
    }
  }

  async status(service?: string): Promise<PluginStatus> {
    const route = service ? `/DSO.Status?service=${encodeURIComponent(service)}` : '/DSO.Status';
    const reply = await this.request('GET', route, undefined, 10_000);
    if (reply.status === 404) {
      throw new CliError(EXIT.UNSUPPORTED, `the plugin ${this.pluginName} has no status route (GET /DSO.Status): it is not DSO, or older than this CLI`);
    }
    if (reply.status !== 200) throw new CliError(EXIT.PLUGIN, `the plugin ${this.pluginName} answered GET /DSO.Status with HTTP ${reply.status}`);
    return this.parse<PluginStatus>(reply, 'GET /DSO.Status');
  }

  async testVault(reference?: string): Promise<TestVaultResult> {
    // A login plus a read take at most DSO_TIMEOUT each (under 30 s): allow for both.
    const reply = await this.request('POST', '/DSO.TestVault', reference === undefined ? {} : { Reference: reference }, 75_000);
    if (reply.status === 404) throw new CliError(EXIT.UNSUPPORTED, `the plugin ${this.pluginName} has no Vault test route (POST /DSO.TestVault)`);
    const body = this.parse<TestVaultResult & { Err?: string }>(reply, 'POST /DSO.TestVault');
    if (reply.status !== 200) return { ok: false, stage: 'read', code: 'ERR_BAD_REQUEST', error: body.Err ?? `HTTP ${reply.status}` };
    return body;
  }

  private async composeCall<T>(method: string, route: string, body: unknown, timeoutMs: number): Promise<T> {
    const reply = await this.request(method, route, body, timeoutMs);
    const parsed = this.parse<T & { Err?: string; code?: string }>(reply, `${method} ${route}`);
    if (reply.status === 404 && parsed.code !== 'ERR_NOT_FOUND' && parsed.code !== 'ERR_UNSUPPORTED') {
      throw new CliError(EXIT.UNSUPPORTED, `the plugin ${this.pluginName} has no compose routes (${method} ${route}): it is older than this CLI`, `upgrade the plugin: docker plugin disable ${this.pluginName} && docker plugin upgrade ${this.pluginName} <ref> && docker plugin enable ${this.pluginName}`);
    }
    if (reply.status !== 200) throw new PluginRouteError(parsed.Err ?? `HTTP ${reply.status}`, parsed.code);
    return parsed;
  }

  composeUp(request: ComposeUpRequest): Promise<ComposeUpReply> {
    // One Vault read per secret, each within DSO_TIMEOUT (under 30 s): allow for a few slow ones.
    return this.composeCall<ComposeUpReply>('POST', '/DSO.ComposeUp', request, 120_000);
  }

  composeDown(project: string): Promise<ComposeDownReply> {
    return this.composeCall<ComposeDownReply>('POST', '/DSO.ComposeDown', { Project: project }, 30_000);
  }

  async composeList(project?: string): Promise<ComposeListReply | undefined> {
    const route = project ? `/DSO.Compose?project=${encodeURIComponent(project)}` : '/DSO.Compose';
    const reply = await this.request('GET', route, undefined, 10_000);
    if (reply.status === 404) return undefined;
    return this.parse<ComposeListReply>(reply, `GET ${route}`);
  }

  async rotate(secret: string): Promise<RotationReport | undefined> {
    // Rolling services goes through the Engine API, one service after another: allow time.
    const reply = await this.request('POST', '/DSO.Rotate', { Secret: secret }, 120_000);
    const body = this.parse<RotationReport & { Err?: string; code?: string }>(reply, 'POST /DSO.Rotate');
    if (reply.status === 404 && body.code !== 'ERR_NOT_FOUND') return undefined; // an older plugin: no rotation
    if (reply.status === 404) {
      throw new CliError(EXIT.FAILURE, body.Err ?? `no secret ${secret} of this plugin`, 'docker secret ls lists the secrets; only those created with this plugin as --driver can be rotated');
    }
    if (reply.status !== 200) throw new CliError(EXIT.FAILURE, `rotation of ${secret} failed: ${body.Err ?? `HTTP ${reply.status}`}`);
    return { ...body, services: Array.isArray(body.services) ? body.services : [] };
  }
}
