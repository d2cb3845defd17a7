// Talks to Vault: one node-vault client per address over our own transport, failover
// across VAULT_ADDR in order, retries with backoff inside the caller's deadline. Each
// attempt gets a share of that deadline, so a hung or trickling address cannot take it
// all; an address that failed is skipped until a background probe of sys/health sees it
// healthy, and then VAULT_ADDR's order is the preference again. An HA cluster electing a
// new active node (500 "local node not active", a standby's 429/503, a redirect to the
// dead active node) is waited out with jittered backoff until the deadline, with the
// same token: it is still valid after the election.
//
// Layers: this class owns failover, deadlines, retries and address state for every call.
// Reads (GET: KV reads, dynamic credentials, lookups) go straight to the transport
// (transport.ts: node's http with keep-alive, abort, connect timeout, redirect rules), as
// node-vault would send them but without its per-call request validation and copying;
// writes (auth logins, token and lease calls) go through node-vault's request(), which
// adds the namespace and token headers and maps a non-2xx answer to its ApiResponseError.
// Every answer's storage index is kept and sent again (consistency.ts): a standby that
// trails the active node never answers DSO with older state than it has seen.
import * as fs from 'node:fs';
import * as https from 'node:https';
import nodeVault from 'node-vault';
import type { TlsSettings } from '../config/settings';
import { DsoError } from '../errors';
import { FaultLog, Logger } from '../log';
import { StorageIndex } from './consistency';
import { healthState, VaultAbortedError, VaultApiError, VaultUnavailableError, vaultErrorStrings } from './errors';
import { Agents, createAgents, createTransport, TransportOptions, TransportResponse } from './transport';

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
  /** Rounds over all addresses before giving up on errors that are not an election (within the deadline). */
  rounds?: number;
  backoffMs?: number;
  /** First probe of a skipped address after this; the interval doubles with each failed probe. */
  probeIntervalMs?: number;
}

/** What DSO last learned about one VAULT_ADDR entry (shown by `docker dso system info`). */
export interface VaultAddressStatus {
  address: string;
  /** From sys/health (active, standby, sealed...), or what the last attempt showed. */
  state: 'active' | 'standby' | 'sealed' | 'uninitialized' | 'unreachable' | 'hung' | 'unknown';
  /** Requests skip this address until a probe (or an answer) shows it healthy. */
  skipped: boolean;
  nextProbeAt?: string;
  lastError?: string;
  lastAnswerAt?: string;
}

type AddressState = VaultAddressStatus['state'];

interface Endpoint {
  address: string;
  /** What node-vault puts before a path (address, /v1, VAULT_PREFIX), for reads sent without it. */
  prefix: string;
  /** The X-Vault-Namespace node-vault sends (settings, or its VAULT_NAMESPACE fallback). */
  namespace?: string;
  api: nodeVault.client;
  state: AddressState;
  skipped: boolean;
  /** When it was last marked down: only an answer to something sent after that is a recovery. */
  skippedAt: number;
  /** When it last recovered: only a failure of something sent after that is a new fault. */
  recoveredAt: number;
  /** Consecutive failures while skipped; the probe interval doubles with each. */
  failures: number;
  nextProbeAt: number;
  probing: boolean;
  lastError?: string;
  lastAnswerAt?: number;
  lastHealthAt?: number;
}

const noop = (): void => undefined;

/** A new connection must be up within this (well under any DSO_TIMEOUT). */
const CONNECT_TIMEOUT_MS = 1_000;
/** An attempt given less than this that times out does not mark its address hung. */
const HUNG_EVIDENCE_MS = 250;
/** Backoff between rounds: doubling from backoffMs up to this, with jitter. */
const MAX_BACKOFF_MS = 1_000;
/** A skipped address is probed at least this often. */
const MAX_PROBE_INTERVAL_MS = 10_000;
const PROBE_TIMEOUT_MS = 2_000;
/** Usable addresses are asked for their role (active, standby) this often, for system info. */
const ROLE_REFRESH_MS = 15_000;

/**
 * Vault's words while an HA cluster has no active node, or a standby cannot reach it:
 * worth waiting for (an election takes a few seconds), with the same token.
 */
const ELECTION = /not active|active cluster node|active node|standby|leader|election|forward/i;

/** election: wait and retry; down, sealed: skip the address; other: a few rounds; fatal: give up. */
type Failure = 'election' | 'down' | 'sealed' | 'other' | 'fatal';

function classify(err: unknown): Failure {
  if (err instanceof VaultUnavailableError) return err.viaRedirect ? 'election' : 'down';
  if (!(err instanceof VaultApiError)) return 'fatal';
  if (err.status === 503 && /sealed/i.test(err.reason)) return 'sealed';
  if (err.status === 429 || err.status === 502 || err.status === 503 || err.status === 504) return 'election';
  if (err.status >= 500) return ELECTION.test(err.reason) ? 'election' : 'other';
  return 'fatal';
}

function readTlsFile(file: string | undefined, setting: string): Buffer | undefined {
  if (!file) return undefined;
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new DsoError(
      'ERR_SETTINGS',
      `${setting}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
}

/** The TLS side of the https agents, its files read once at start-up. */
function agentTls(tls: TlsSettings): https.AgentOptions {
  return {
    ca: readTlsFile(tls.caCertFile, 'VAULT_CACERT'),
    cert: readTlsFile(tls.clientCertFile, 'VAULT_CLIENT_CERT'),
    key: readTlsFile(tls.clientKeyFile, 'VAULT_CLIENT_KEY'),
    servername: tls.serverName,
    rejectUnauthorized: !tls.skipVerify,
  };
}

function encodeQuery(query?: Record<string, string | number>): string {
  if (!query || Object.keys(query).length === 0) return '';
  return `?${new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)])).toString()}`;
}

function apiError(statusCode: number, body: unknown, path: string): VaultApiError {
  const reasons = vaultErrorStrings(body);
  if (statusCode === 503 && reasons.length === 0) reasons.push('Vault is sealed or in standby');
  return new VaultApiError(statusCode, reasons, path);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class VaultClient {
  private readonly endpoints: Endpoint[];
  private readonly agents: Agents;
  private readonly transport: (options: TransportOptions) => Promise<TransportResponse>;
  /**
   * Health probes keep connections of their own. On the shared pool a probe due while a read
   * held the pooled connection opened another one mid-run; a socket created once node's
   * network path is optimized deoptimized ~50 functions of it at once (measured with
   * --trace-deopt under one request at a time), and reads paid for the recompilation.
   */
  private readonly probeAgents: Agents;
  private readonly probeTransport: (options: TransportOptions) => Promise<TransportResponse>;
  /** The address that answered last. */
  private answered?: Endpoint;
  private readonly faults: FaultLog;
  private readonly index = new StorageIndex();
  /** HTTP attempts, for metrics. */
  readonly attempts = { ok: 0, failed: 0 };
  private readonly rounds: number;
  private readonly backoffMs: number;
  private readonly probeIntervalMs: number;
  private probeTimer?: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly options: VaultClientOptions) {
    if (options.tls.skipVerify)
      options.logger.warn('VAULT_SKIP_VERIFY=true: TLS certificates of Vault are NOT verified');
    const plain = options.addresses.filter((a) => a.startsWith('http://'));
    if (plain.length)
      options.logger.warn(
        'VAULT_ADDR has plain http addresses: the Vault token travels to them unencrypted; use https',
        { addresses: plain },
      );
    const tls = agentTls(options.tls);
    this.agents = createAgents(tls);
    this.probeAgents = createAgents(tls);
    this.faults = new FaultLog(options.logger);
    const origins = options.addresses.map((a) => new URL(a).origin);
    const learn = (index: string) => this.index.learn(index);
    this.transport = createTransport(this.agents, origins, learn);
    this.probeTransport = createTransport(this.probeAgents, origins, learn);
    this.rounds = options.rounds ?? 3;
    this.backoffMs = options.backoffMs ?? 100;
    this.probeIntervalMs = options.probeIntervalMs ?? 1_000;
    this.endpoints = options.addresses.map((address) => {
      const api = nodeVault({
        endpoint: address,
        apiVersion: 'v1',
        namespace: options.namespace,
        // node-vault's debug output prints request bodies (secret ids, JWTs): keep it off.
        debug: noop,
        'request-promise': { defaults: () => this.transport },
      });
      // node-vault falls back to $VAULT_TOKEN; every call here names its token itself.
      api.token = '';
      const { endpoint, apiVersion, pathPrefix, namespace } = api as unknown as {
        endpoint: string;
        apiVersion: string;
        pathPrefix: string;
        namespace?: string;
      };
      const prefix = `${endpoint}/${apiVersion}${pathPrefix}/`;
      return {
        address,
        prefix,
        namespace: namespace || undefined,
        api,
        state: 'unknown',
        skipped: false,
        skippedAt: 0,
        recoveredAt: 0,
        failures: 0,
        nextProbeAt: 0,
        probing: false,
      };
    });
  }

  get addresses(): string[] {
    return this.endpoints.map((e) => e.address);
  }

  /** The address that answered last (the first one before any answer). */
  get activeAddress(): string | undefined {
    return (this.answered ?? this.endpoints[0])?.address;
  }

  /** Each address as DSO sees it: role, skipped or not, last error. */
  status(): VaultAddressStatus[] {
    const iso = (t?: number) => (t ? new Date(t).toISOString() : undefined);
    return this.endpoints.map((e) => ({
      address: e.address,
      state: e.state,
      skipped: e.skipped,
      nextProbeAt: e.skipped ? iso(e.nextProbeAt) : undefined,
      lastError: e.lastError,
      lastAnswerAt: iso(e.lastAnswerAt),
    }));
  }

  async call<T = Record<string, unknown>>(call: VaultCall): Promise<T> {
    if (this.endpoints.length === 0) throw new DsoError('ERR_SETTINGS', 'VAULT_ADDR is not set');
    this.startProbing();
    let lastError: unknown;
    for (let round = 0; ; round++) {
      const candidates = this.candidates();
      let election = false;
      for (let i = 0; i < candidates.length; i++) {
        const endpoint = candidates[i];
        const remaining = call.deadline - Date.now();
        if (remaining <= 0) throw this.deadlineError(lastError);
        // Half of what is left while another address could still answer: a hung one never takes it all.
        const budget = i < candidates.length - 1 ? remaining / 2 : remaining;
        const sentAt = Date.now();
        try {
          const body = await this.once<T>(endpoint, call, budget);
          this.markUp(endpoint, sentAt);
          return body;
        } catch (caught) {
          let err = caught;
          // An attempt cut short by a tiny budget (a request that arrived with its deadline
          // nearly spent) says nothing about the address: it is not marked down for it.
          let blamesAddress = true;
          if (err instanceof VaultAbortedError) {
            if (call.signal?.aborted) throw this.deadlineError(lastError);
            err = new VaultUnavailableError(
              endpoint.address,
              `no complete answer within ${Math.round(budget)} ms (hung or too slow)`,
            );
            blamesAddress = budget >= HUNG_EVIDENCE_MS;
            if (blamesAddress) this.markDown(endpoint, 'hung', (err as DsoError).message, sentAt);
            if (Date.now() >= call.deadline - 1) throw this.deadlineError(lastError);
          }
          const failure = classify(err);
          if (failure === 'fatal') throw err;
          lastError = err;
          if (failure === 'down' && endpoint.state !== 'hung' && blamesAddress)
            this.markDown(endpoint, 'unreachable', (err as DsoError).message, sentAt);
          if (failure === 'sealed') this.markDown(endpoint, 'sealed', (err as DsoError).message, sentAt);
          if (failure === 'election') election = true;
        }
      }
      // Other errors get `rounds` rounds; an election is waited out until the deadline.
      if (round + 1 >= this.rounds && !election) throw lastError;
      const pause = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2 ** round) * (0.5 + Math.random() / 2);
      if (Date.now() + pause >= call.deadline) throw election ? this.deadlineError(lastError) : lastError;
      await sleep(pause);
    }
  }

  /**
   * VAULT_ADDR order, skipped addresses left out while any other is usable; all of them,
   * soonest probe first, when none is.
   */
  private candidates(): Endpoint[] {
    let skipped = 0;
    for (const endpoint of this.endpoints) if (endpoint.skipped) skipped++;
    // The usual case, every address usable, allocates nothing.
    if (skipped === 0) return this.endpoints;
    if (skipped < this.endpoints.length) return this.endpoints.filter((e) => !e.skipped);
    return [...this.endpoints].sort((a, b) => a.nextProbeAt - b.nextProbeAt);
  }

  /**
   * `sentAt`: when the failed attempt was sent. A late failure of a request sent before the
   * address last recovered (one that hung through the fault's end) says nothing of now: it
   * neither marks the address down again nor logs the same fault a second time.
   */
  private markDown(
    endpoint: Endpoint,
    state: 'unreachable' | 'hung' | 'sealed',
    reason: string,
    sentAt?: number,
  ): void {
    if (sentAt !== undefined && sentAt < endpoint.recoveredAt) return;
    endpoint.state = state;
    endpoint.lastError = reason;
    if (!endpoint.skipped) {
      endpoint.skipped = true;
      endpoint.skippedAt = Date.now();
      endpoint.failures = 0;
      // Logged once per fault; requests skip the address until it answers again.
      this.faults.fault(endpoint.address, 'Vault not answering', {
        address: endpoint.address,
        state,
        error: reason,
        skipped: true,
      });
    }
    endpoint.failures++;
    endpoint.nextProbeAt =
      Date.now() + Math.min(MAX_PROBE_INTERVAL_MS, this.probeIntervalMs * 2 ** (endpoint.failures - 1));
  }

  /**
   * `sentAt`: when the answered attempt was sent. A late answer to a request sent before the
   * address was marked down says nothing of now: it neither clears the fault nor logs a
   * recovery (which would log the same fault twice).
   */
  private markUp(endpoint: Endpoint, sentAt: number): void {
    endpoint.lastAnswerAt = Date.now();
    if (endpoint.skipped && sentAt < endpoint.skippedAt) return;
    endpoint.lastError = undefined;
    if (endpoint.state === 'unreachable' || endpoint.state === 'hung' || endpoint.state === 'sealed')
      endpoint.state = 'unknown';
    if (endpoint.skipped) this.recovered(endpoint);
    const previous = this.answered ?? this.endpoints[0];
    if (previous !== endpoint)
      this.options.logger.warn('switched Vault address', { from: previous.address, to: endpoint.address });
    this.answered = endpoint;
  }

  private recovered(endpoint: Endpoint): void {
    endpoint.skipped = false;
    endpoint.recoveredAt = Date.now();
    endpoint.failures = 0;
    endpoint.lastError = undefined;
    this.faults.recovered(endpoint.address, 'Vault answering again', {
      address: endpoint.address,
      state: endpoint.state,
    });
  }

  /** In the background: skipped addresses when their probe is due, the others' roles now and then. */
  private startProbing(): void {
    if (this.probeTimer || this.closed) return;
    this.probeTimer = setInterval(
      () => {
        const now = Date.now();
        for (const endpoint of this.endpoints) {
          if (endpoint.probing) continue;
          const due = endpoint.skipped
            ? endpoint.nextProbeAt <= now
            : now - (endpoint.lastHealthAt ?? 0) >= ROLE_REFRESH_MS;
          if (due) void this.probe(endpoint);
        }
      },
      Math.min(this.probeIntervalMs, 250),
    );
    this.probeTimer.unref();
  }

  private async probe(endpoint: Endpoint): Promise<void> {
    endpoint.probing = true;
    const sentAt = Date.now();
    try {
      const { statusCode } = await this.probeTransport({
        uri: `${endpoint.address.replace(/\/+$/, '')}/v1/sys/health`,
        method: 'GET',
        // The transport's own timer, as for reads: a probe's request is shaped as a read's.
        timeoutMs: PROBE_TIMEOUT_MS,
        connectTimeout: CONNECT_TIMEOUT_MS,
      });
      endpoint.lastHealthAt = Date.now();
      endpoint.state = healthState(statusCode) ?? 'unknown';
      if (endpoint.state === 'active' || endpoint.state === 'standby') {
        if (endpoint.skipped && sentAt >= endpoint.skippedAt) this.recovered(endpoint);
      } else if (endpoint.skipped || endpoint.state === 'sealed') {
        // A node found sealed is skipped before a request has to meet it.
        this.markDown(
          endpoint,
          endpoint.state === 'sealed' ? 'sealed' : 'unreachable',
          `sys/health answered ${statusCode}`,
        );
      }
    } catch (err) {
      endpoint.lastHealthAt = Date.now();
      const state = err instanceof VaultAbortedError ? 'hung' : 'unreachable';
      const reason =
        state === 'hung'
          ? `sys/health: no answer within ${PROBE_TIMEOUT_MS} ms`
          : err instanceof DsoError
            ? err.message
            : 'probe failed';
      if (endpoint.skipped) this.markDown(endpoint, state, reason);
      else endpoint.state = state;
    } finally {
      endpoint.probing = false;
    }
  }

  private deadlineError(lastError: unknown): DsoError {
    const why = lastError instanceof DsoError ? ` (last error: ${lastError.message})` : '';
    return new DsoError('ERR_TIMEOUT', `no answer from Vault within DSO_TIMEOUT${why}`);
  }

  private async once<T>(endpoint: Endpoint, call: VaultCall, budget: number): Promise<T> {
    // Object.assign, not a spread: V8 adds properties to a spread copy ten times slower.
    const headers: Record<string, string> = Object.assign({}, call.headers);
    if (call.token) headers['X-Vault-Token'] = call.token;
    this.index.stamp(headers);
    const connectTimeout = Math.min(CONNECT_TIMEOUT_MS, budget);
    try {
      let body: T;
      if (call.method === 'GET' && call.body === undefined) {
        // A read: straight to the transport, with what node-vault would add (the namespace).
        // Either way the transport's own timer ends the attempt when its budget is spent, the
        // caller's signal before.
        if (endpoint.namespace) headers['X-Vault-Namespace'] = endpoint.namespace;
        const answer = await this.transport({
          uri: `${endpoint.prefix}${call.path}${encodeQuery(call.query)}`,
          method: 'GET',
          headers,
          signal: call.signal,
          timeoutMs: budget,
          connectTimeout,
        });
        if (answer.statusCode !== 200 && answer.statusCode !== 204)
          throw apiError(answer.statusCode, answer.body, call.path);
        body = answer.body as T;
      } else {
        // Through node-vault's request(), which passes these options on to the same transport.
        body = (await endpoint.api.request({
          path: `/${call.path}${encodeQuery(call.query)}`,
          method: call.method,
          json: call.body,
          headers,
          signal: call.signal,
          timeoutMs: budget,
          connectTimeout,
        })) as T;
      }
      this.attempts.ok++;
      return body;
    } catch (err) {
      this.attempts.failed++;
      if (err instanceof DsoError) throw err;
      const response = (err as { response?: { statusCode?: number; body?: unknown } }).response;
      if (response?.statusCode) throw apiError(response.statusCode, response.body, call.path);
      // Anything else (never expected) is reduced to its name: raw errors may hold headers.
      throw new DsoError('ERR_INTERNAL', `unexpected error calling Vault: ${(err as Error)?.name ?? 'unknown'}`);
    }
  }

  close(): void {
    this.closed = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    for (const agents of [this.agents, this.probeAgents]) {
      agents.http.destroy();
      agents.https.destroy();
    }
  }
}
