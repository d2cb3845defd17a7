// Talks to Vault: one node-vault client per address over our own transport, failover
// across VAULT_ADDR in order, bounded retries with backoff inside the caller's deadline.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import nodeVault from 'node-vault';
import type { TlsSettings } from '../config/settings';
import { DsoError } from '../errors';
import { FaultLog, Logger } from '../log';
import { VaultApiError, VaultUnavailableError, vaultErrorStrings } from './errors';
import { Agents, createTransport } from './transport';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

export interface VaultCall {
  method: HttpMethod;
  /** API path without the /v1/ prefix, e.g. secret/data/app. */
  path: string;
  query?: Record<string, string | number>;
  body?: unknown;
  token?: string;
  headers?: Record<string, string>;
  /** Epoch milliseconds by which the whole call, retries included, must be done. */
  deadline: number;
  signal?: AbortSignal;
}

export interface VaultClientOptions {
  addresses: string[];
  namespace?: string;
  tls: TlsSettings;
  logger: Logger;
  /** Rounds over all addresses before giving up (within the deadline). */
  rounds?: number;
  backoffMs?: number;
}

interface Endpoint {
  address: string;
  api: nodeVault.client;
}

const noop = (): void => undefined;

function readTlsFile(file: string | undefined, setting: string): Buffer | undefined {
  if (!file) return undefined;
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new DsoError('ERR_SETTINGS', `${setting}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** Keep-alive agents shared by every address, so connections are reused, not re-handshaken. */
export function createAgents(tls: TlsSettings): Agents {
  return {
    http: new http.Agent({ keepAlive: true, maxSockets: 64 }),
    https: new https.Agent({
      keepAlive: true,
      maxSockets: 64,
      ca: readTlsFile(tls.caCertFile, 'VAULT_CACERT'),
      cert: readTlsFile(tls.clientCertFile, 'VAULT_CLIENT_CERT'),
      key: readTlsFile(tls.clientKeyFile, 'VAULT_CLIENT_KEY'),
      servername: tls.serverName,
      rejectUnauthorized: !tls.skipVerify,
    }),
  };
}

function retriable(err: unknown): boolean {
  if (err instanceof VaultUnavailableError) return true;
  return err instanceof VaultApiError && (err.status >= 500 || err.status === 429);
}

function encodeQuery(query?: Record<string, string | number>): string {
  if (!query || Object.keys(query).length === 0) return '';
  return `?${new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)])).toString()}`;
}

export class VaultClient {
  private readonly endpoints: Endpoint[];
  private readonly agents: Agents;
  private preferred = 0;
  private readonly faults: FaultLog;
  /** HTTP attempts, for metrics. */
  readonly attempts = { ok: 0, failed: 0 };
  private readonly rounds: number;
  private readonly backoffMs: number;

  constructor(private readonly options: VaultClientOptions) {
    if (options.tls.skipVerify) options.logger.warn('VAULT_SKIP_VERIFY=true: TLS certificates of Vault are NOT verified');
    this.agents = createAgents(options.tls);
    this.faults = new FaultLog(options.logger);
    const transport = createTransport(this.agents);
    this.rounds = options.rounds ?? 3;
    this.backoffMs = options.backoffMs ?? 100;
    this.endpoints = options.addresses.map((address) => {
      const api = nodeVault({
        endpoint: address,
        apiVersion: 'v1',
        namespace: options.namespace,
        // node-vault's debug output prints request bodies (secret ids, JWTs): keep it off.
        debug: noop,
        'request-promise': { defaults: () => transport },
      });
      // node-vault falls back to $VAULT_TOKEN; every call here names its token itself.
      api.token = '';
      return { address, api };
    });
  }

  get addresses(): string[] {
    return this.endpoints.map((e) => e.address);
  }

  get activeAddress(): string | undefined {
    return this.endpoints[this.preferred]?.address;
  }

  async call<T = Record<string, unknown>>(call: VaultCall): Promise<T> {
    if (this.endpoints.length === 0) throw new DsoError('ERR_SETTINGS', 'VAULT_ADDR is not set');
    let lastError: unknown;
    for (let round = 0; round < this.rounds; round++) {
      for (let i = 0; i < this.endpoints.length; i++) {
        const index = (this.preferred + i) % this.endpoints.length;
        const remaining = call.deadline - Date.now();
        if (remaining <= 0) throw this.deadlineError(lastError);
        try {
          const body = await this.once<T>(this.endpoints[index], call, remaining);
          this.markUp(this.endpoints[index]);
          if (index !== this.preferred) {
            this.options.logger.warn('switched Vault address', { from: this.endpoints[this.preferred].address, to: this.endpoints[index].address });
            this.preferred = index;
          }
          return body;
        } catch (err) {
          if (err instanceof DsoError && err.code === 'ERR_TIMEOUT') this.markDown(this.endpoints[index], 'no answer within DSO_TIMEOUT');
          if (err instanceof VaultUnavailableError || (err instanceof VaultApiError && err.status === 503)) this.markDown(this.endpoints[index], err.message);
          if (!retriable(err)) throw err;
          lastError = err;
        }
      }
      const pause = this.backoffMs * 2 ** round * (0.5 + Math.random() / 2);
      if (round + 1 < this.rounds && Date.now() + pause < call.deadline) await new Promise((r) => setTimeout(r, pause));
    }
    throw lastError;
  }

  private markDown(endpoint: Endpoint, reason: string): void {
    this.faults.fault(endpoint.address, 'Vault not answering', { address: endpoint.address, error: reason });
  }

  private markUp(endpoint: Endpoint): void {
    this.faults.recovered(endpoint.address, 'Vault answering again', { address: endpoint.address });
  }

  private deadlineError(lastError: unknown): DsoError {
    const why = lastError instanceof DsoError ? ` (last error: ${lastError.message})` : '';
    return new DsoError('ERR_TIMEOUT', `no answer from Vault within DSO_TIMEOUT${why}`);
  }

  private async once<T>(endpoint: Endpoint, call: VaultCall, timeout: number): Promise<T> {
    const headers: Record<string, string> = { ...call.headers };
    if (call.token) headers['X-Vault-Token'] = call.token;
    try {
      const body = (await endpoint.api.request({
        path: `/${call.path}${encodeQuery(call.query)}`,
        method: call.method,
        json: call.body,
        headers,
        signal: call.signal,
        timeout,
      })) as T;
      this.attempts.ok++;
      return body;
    } catch (err) {
      this.attempts.failed++;
      if (err instanceof DsoError) throw err;
      const response = (err as { response?: { statusCode?: number; body?: unknown } }).response;
      if (response?.statusCode) {
        const reasons = vaultErrorStrings(response.body);
        if (response.statusCode === 503 && reasons.length === 0) reasons.push('Vault is sealed or in standby');
        throw new VaultApiError(response.statusCode, reasons, call.path);
      }
      // Anything else (never expected) is reduced to its name: raw errors may hold headers.
      throw new DsoError('ERR_INTERNAL', `unexpected error calling Vault: ${(err as Error)?.name ?? 'unknown'}`);
    }
  }

  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }
}
