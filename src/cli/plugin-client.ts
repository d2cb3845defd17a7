// The plugin's own routes on its socket: what `docker dso` knows about the plugin comes from
// here, not from guesses. Every reply is checked against the plugin's contract; one that does
// not match is reported as such (plugin and CLI ship together: it is a defect, not an age).
import { SocketReply, socketRequest } from '../docker/api';
import * as path from 'node:path';
import type { ErrorSubcode } from '../errors';
import type { ComposeDownReply, ComposeListReply, ComposeUpReply, ComposeUpRequest } from '../plugin/compose-protocol';
import { checkReply, PluginStatus, RotationReport, TestVaultResult } from '../plugin/contract';
import { CliError, EXIT } from './errors';

// The shapes come from the plugin's contract (../plugin/contract.ts): one declaration for both halves.
export type { FetchRecord, PluginStatus, RotationReport, TestVaultResult, TokenStatus } from '../plugin/contract';

export interface PluginApi {
  status(service?: string): Promise<PluginStatus>;
  testVault(reference?: string): Promise<TestVaultResult>;
  /** POST /DSO.Rotate: roll the services of one secret now (or refresh a compose project's file). */
  rotate(secret: string): Promise<RotationReport>;
  /** The plugin's runtime directory on this host (its socket's directory), where compose files live. */
  runtimeDir: string;
  /** POST /DSO.ComposeUp: resolve a compose project's references into files on a tmpfs. */
  composeUp(request: ComposeUpRequest): Promise<ComposeUpReply>;
  /** POST /DSO.ComposeDown: remove a project's files. */
  composeDown(project: string): Promise<ComposeDownReply>;
  /** GET /DSO.Compose: the compose projects whose files the plugin holds. */
  composeList(project?: string): Promise<ComposeListReply>;
}

/** A refusal of one of the plugin's routes, with its stable code (e.g. ERR_NOT_TMPFS) and subcode. */
export class PluginRouteError extends CliError {
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly subcode?: ErrorSubcode,
    fix?: string,
  ) {
    super(EXIT.FAILURE, message, fix);
  }
}

type Route = 'GET /DSO.Status' | 'POST /DSO.TestVault' | 'POST /DSO.Rotate';

export class PluginClient implements PluginApi {
  readonly runtimeDir: string;

  constructor(
    readonly socket: string,
    private readonly pluginName: string,
  ) {
    this.runtimeDir = path.dirname(socket);
  }

  private request(method: string, route: string, body: unknown, timeoutMs: number): Promise<SocketReply> {
    return socketRequest(this.socket, method, route, body, timeoutMs).catch((err: NodeJS.ErrnoException) => {
      throw this.unreachable(err);
    });
  }

  private unreachable(err: NodeJS.ErrnoException): CliError {
    const name = this.pluginName;
    switch (err.code) {
      case 'EACCES':
      case 'EPERM':
        return new CliError(
          EXIT.PLUGIN,
          `permission denied on the plugin socket ${this.socket}`,
          'run docker dso as root (e.g. sudo docker dso ...): plugin sockets belong to root',
        );
      case 'ENOENT':
      case 'ECONNREFUSED':
        return new CliError(
          EXIT.PLUGIN,
          `the plugin ${name} does not answer on ${this.socket} (${err.code}); docker dso must ` +
            `run on the node where the plugin runs`,
          `see the plugin's log (dockerd's log, lines with plugin=<id>), then: docker plugin ` +
            `disable ${name} && docker plugin enable ${name}`,
        );
      case 'ETIMEDOUT':
        return new CliError(
          EXIT.PLUGIN,
          `the plugin ${name} did not answer on ${this.socket} in time`,
          `see the plugin's log; restart it: docker plugin disable -f ${name} && docker plugin enable ${name}`,
        );
      default:
        return new CliError(
          EXIT.PLUGIN,
          `cannot talk to the plugin ${name} on ${this.socket}: ${err.code ?? err.message}`,
        );
    }
  }

  private parse<T>(reply: SocketReply, route: string): T {
    try {
      return JSON.parse(reply.body) as T;
    } catch {
      throw new CliError(
        EXIT.PLUGIN,
        `the plugin ${this.pluginName} answered ${route} with something that is not JSON (HTTP ${reply.status})`,
      );
    }
  }

  /**
   * A route's reply: a refusal is the plugin's RouteError (with `fixes[code]` as its fix), a route of
   * the contract (`checked`) is checked against it, and any other is a defect of this release.
   */
  private async call<T>(
    method: string,
    route: string,
    body: unknown,
    timeoutMs: number,
    checked?: Route,
    fixes: Partial<Record<string, string>> = {},
  ) {
    const reply = await this.request(method, route, body, timeoutMs);
    const parsed = this.parse<unknown>(reply, `${method} ${route}`);
    if (reply.status !== 200) {
      const refusal = checkReply('error', parsed).reply;
      const message = refusal?.Err ?? `HTTP ${reply.status}`;
      const fix = fixes[refusal?.code ?? ''];
      const shown = checked ? `the plugin ${this.pluginName} refused ${checked}: ${message}` : message;
      throw new PluginRouteError(shown, refusal?.code, refusal?.subcode, fix);
    }
    if (!checked) return parsed as T;
    const { reply: typed, problem } = checkReply(checked, parsed);
    if (typed) return typed as T;
    throw new CliError(
      EXIT.PLUGIN,
      `the plugin ${this.pluginName} answered ${checked} with a reply this docker dso does not understand: ${problem}`,
      'the plugin and docker dso come from one release: install both from the same DSO version',
    );
  }

  status(service?: string): Promise<PluginStatus> {
    const route = service ? `/DSO.Status?service=${encodeURIComponent(service)}` : '/DSO.Status';
    return this.call('GET', route, undefined, 10_000, 'GET /DSO.Status');
  }

  testVault(reference?: string): Promise<TestVaultResult> {
    // A login plus a read take at most DSO_TIMEOUT each (under 30 s): allow for both.
    const body = reference === undefined ? {} : { Reference: reference };
    return this.call('POST', '/DSO.TestVault', body, 75_000, 'POST /DSO.TestVault');
  }

  composeUp(request: ComposeUpRequest): Promise<ComposeUpReply> {
    // One Vault read per secret, each within DSO_TIMEOUT (under 30 s): allow for a few slow ones.
    return this.call('POST', '/DSO.ComposeUp', request, 120_000);
  }

  composeDown(project: string): Promise<ComposeDownReply> {
    return this.call('POST', '/DSO.ComposeDown', { Project: project }, 30_000);
  }

  composeList(project?: string): Promise<ComposeListReply> {
    const route = project ? `/DSO.Compose?project=${encodeURIComponent(project)}` : '/DSO.Compose';
    return this.call('GET', route, undefined, 10_000);
  }

  rotate(secret: string): Promise<RotationReport> {
    // Rolling services goes through the Engine API, one service after another: allow time.
    return this.call('POST', '/DSO.Rotate', { Secret: secret }, 120_000, 'POST /DSO.Rotate', {
      ERR_NOT_FOUND:
        'docker secret ls lists the secrets; only those created with this plugin as --driver can be rotated',
    });
  }
}
