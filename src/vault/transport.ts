// The HTTP transport under node-vault: undici's connection pools with keep-alive, a time
// limit (one timer, no AbortController per attempt), the caller's abort signal and a connect
// timeout on every new connection (so a hung or trickling address never keeps a pooled
// connection past its budget), 307/308 redirects followed only to an address the operator
// named (VAULT_ADDR, or the same host) and never from https to http, and errors that carry
// no request headers.
//
// Why undici and not node's http: undici hands a response's end to its handler straight from
// the socket's data, and nothing else is queued before the answer's promise continues. Node's
// http client queues its own work at a response's end (the socket back to the agent's pool,
// 'close' events) in process.nextTick callbacks, which all run before any promise
// continuation: every GetSecret's reply waited for them (BENCHMARKS.md, wave 7, item 8).
import type { ConnectionOptions } from 'node:tls';
import type { Agent as UndiciAgent, Dispatcher } from 'undici';
import { DsoError } from '../errors';
import { VaultAbortedError, VaultUnavailableError } from './errors';

/**
 * undici's Agent, loaded alone: the package's index also loads fetch, WebSocket, caches and
 * mocks, which the plugin never uses and which cost about 9 MiB of RSS and 30 ms at start-up
 * (measured). undici has no exports map; this is the module its index exports as Agent
 * (a unit test checks that they are one).
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const Agent = require('undici/lib/dispatcher/agent') as typeof UndiciAgent;
export type Agent = UndiciAgent;

export interface TransportOptions {
  uri: string;
  method: string;
  headers?: Record<string, string>;
  json?: unknown;
  /** Aborts the attempt (its budget, or the caller's deadline); the connection is closed, not pooled. */
  signal?: AbortSignal;
  /** Milliseconds the whole attempt (redirects included) may take: then it ends as an abort does. */
  timeoutMs?: number;
}

export interface TransportResponse {
  statusCode: number;
  body: unknown;
  request: { path: string };
}

/** TLS settings of every https connection: CA, client certificate, server name, verification. */
export type ConnectionTls = Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'servername' | 'rejectUnauthorized'>;

const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
const MAX_REDIRECTS = 3;
/** Connections per address, at most (node's agents had the same bound). */
const MAX_CONNECTIONS = 64;
/** TCP keep-alive's initial delay on pooled connections (node's agents' default). */
const KEEP_ALIVE_PROBE_MS = 1_000;
/**
 * How long an idle connection is kept when the server gives no Keep-Alive hint. OpenBao and
 * Vault give none and close idle connections after minutes (http_idle_timeout, 5 min).
 */
const IDLE_CONNECTION_MS = 30_000;
/**
 * Taken off a server's Keep-Alive hint (`timeout=N`): a connection is kept N s less this, so
 * a hint of a second or less means the server closes it too soon to reuse it (as node's agents).
 */
const KEEP_ALIVE_MARGIN_MS = 1_000;

function networkReason(err: NodeJS.ErrnoException): string {
  const known: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ECONNRESET: 'connection reset',
    ETIMEDOUT: 'connection timed out',
    EHOSTUNREACH: 'host unreachable',
    ENOTFOUND: 'host name not found',
    EAI_AGAIN: 'host name lookup failed',
    EPIPE: 'connection closed',
    UND_ERR_SOCKET: 'connection closed',
    UND_ERR_CONNECT_TIMEOUT: 'connect timed out',
    DEPTH_ZERO_SELF_SIGNED_CERT: 'TLS: self-signed certificate (set VAULT_CACERT to its CA)',
    UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'TLS: certificate not signed by a trusted CA (set VAULT_CACERT)',
    SELF_SIGNED_CERT_IN_CHAIN: 'TLS: self-signed certificate in chain (set VAULT_CACERT to its CA)',
    ERR_TLS_CERT_ALTNAME_INVALID: 'TLS: certificate does not match the host name (set VAULT_TLS_SERVER_NAME)',
    CERT_HAS_EXPIRED: 'TLS: certificate has expired',
  };
  // A connection's own error, when undici wraps it (a TLS error in a closed socket, say).
  const code = err.code ?? (err.cause as NodeJS.ErrnoException | undefined)?.code;
  return known[code ?? ''] ?? `${code ?? 'network error'}`;
}

/** Where a request goes: the origin undici's pool is keyed by, and the path, parsed once per origin. */
interface Target {
  protocol: string;
  hostname: string;
  /** The Authorization header for credentials in the URL (user:password@), if any. */
  authorization?: string;
  path: string;
  origin: string;
}

/** A path that WHATWG URL parsing would leave exactly as it is: no dot segment, nothing to escape. */
const VERBATIM_PATH = /^\/[A-Za-z0-9_\-@+=:,~/%.]*(?:\?[A-Za-z0-9_\-@+=:,~/%.&]*)?$/;
/** A "." or ".." segment, or what URL would take for one ("%2e"): such a path is parsed. */
const DOT_SEGMENT = /\/\.\.?(?:[/?]|$)|%2e/i;

/** The Authorization header for the credentials written in `url`, as node sent its `auth` option. */
function basicAuthorization(url: URL): string {
  const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
  return `Basic ${Buffer.from(credentials).toString('base64')}`;
}

function targetOf(url: URL): Target {
  return {
    protocol: url.protocol,
    hostname: url.hostname,
    authorization: url.username || url.password ? basicAuthorization(url) : undefined,
    path: `${url.pathname}${url.search}`,
    origin: url.origin,
  };
}

interface Answer {
  status: number;
  location?: string;
  index?: string;
  text: string;
}

/**
 * Keep-alive connections shared by every address, so connections are reused, not
 * re-handshaken. A new connection must be up within `connectTimeoutMs`; an attempt's own
 * timer bounds the rest (undici's header and body timeouts are off).
 */
export function createConnectionPool(tls: ConnectionTls, connectTimeoutMs: number): Agent {
  return new Agent({
    connections: MAX_CONNECTIONS,
    pipelining: 1,
    keepAliveTimeout: IDLE_CONNECTION_MS,
    keepAliveTimeoutThreshold: KEEP_ALIVE_MARGIN_MS,
    headersTimeout: 0,
    bodyTimeout: 0,
    connect: { ...tls, timeout: connectTimeoutMs, keepAlive: true, keepAliveInitialDelay: KEEP_ALIVE_PROBE_MS },
  });
}

/**
 * One attempt: its request's controller once undici has one (when the request is written
 * on a connection), whether it ended, and how to end it early.
 */
class Attempt {
  controller: Dispatcher.DispatchController | undefined;
  /** Set when the attempt has ended early: its time ran out, or the caller aborted. */
  abortedEarly = false;
  /** Rejects the promise of the request in flight, if any. */
  private fail: ((err: Error) => void) | undefined;

  /** The origin asked now (a redirect moves it): what an aborted attempt names. */
  constructor(public origin: string) {}

  bind(fail: (err: Error) => void): void {
    this.fail = fail;
  }

  /** Ends the attempt at once: the request in flight is aborted (its connection closed, not pooled). */
  abort(): void {
    this.abortedEarly = true;
    const err = new VaultAbortedError(this.origin);
    this.controller?.abort(err);
    this.fail?.(err);
  }
}

/** An attempt's timer: a module function given the attempt, not a closure per request. */
function expire(attempt: Attempt): void {
  attempt.abort();
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function once(options: TransportOptions, target: Target, pool: Agent, attempt: Attempt): Promise<Answer> {
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted || attempt.abortedEarly) {
      reject(new VaultAbortedError(target.origin));
      return;
    }
    attempt.origin = target.origin;
    attempt.controller = undefined;
    const payload = options.json === undefined ? undefined : JSON.stringify(options.json);
    // The headers as a flat list (name, value, ...), written out by undici as they are. The
    // Host header is undici's, from the origin.
    const headers: string[] = [];
    if (target.authorization !== undefined) headers.push('Authorization', target.authorization);
    if (options.headers?.Accept === undefined) headers.push('Accept', 'application/json');
    for (const name in options.headers) headers.push(name, options.headers[name]);
    if (payload !== undefined) headers.push('Content-Type', 'application/json');
    let settled = false;
    const settle = (err: Error | undefined, answer?: Answer): void => {
      if (settled) return;
      settled = true;
      attempt.bind(() => undefined);
      if (err) reject(err);
      else resolve(answer as Answer);
    };
    attempt.bind((err) => settle(err));
    let status = 0;
    let location: string | undefined;
    let index: string | undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(controller) {
        attempt.controller = controller;
        // Ended before the request had a connection: it goes no further.
        if (attempt.abortedEarly) controller.abort(new VaultAbortedError(target.origin));
      },
      onResponseStart(_controller, statusCode, responseHeaders) {
        status = statusCode;
        if (statusCode === 307 || statusCode === 308) location = headerText(responseHeaders.location);
        index = headerText(responseHeaders['x-vault-index']);
      },
      onResponseData(controller, chunk) {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) {
          controller.abort(Object.assign(new Error('response too large'), { code: 'ERESPONSETOOLARGE' }));
          return;
        }
        chunks.push(chunk);
      },
      onResponseEnd() {
        settle(undefined, {
          status,
          location,
          index,
          text: chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks, size).toString('utf8'),
        });
      },
      onResponseError(_controller, err) {
        if (err instanceof VaultAbortedError || options.signal?.aborted || attempt.abortedEarly)
          settle(new VaultAbortedError(target.origin));
        else settle(new VaultUnavailableError(target.origin, networkReason(err as NodeJS.ErrnoException)));
      },
    };
    try {
      const method = options.method as Dispatcher.HttpMethod;
      pool.dispatch({ origin: target.origin, path: target.path, method, headers, body: payload }, handler);
    } catch (err) {
      // A request undici refuses before sending it (a header it cannot write, say).
      settle(new VaultUnavailableError(target.origin, networkReason(err as NodeJS.ErrnoException)));
    }
  });
}

/**
 * A request function in the shape node-vault's `request-promise` option expects. Redirects
 * are followed only to `namedOrigins` (the VAULT_ADDR entries) or the host first asked, so
 * the token never travels to a host the operator did not name. `onIndex` is handed each
 * answer's X-Vault-Index (OpenBao 2.7 and later), reads and node-vault's writes alike.
 */
export function createTransport(
  pool: Agent,
  namedOrigins: Iterable<string> = [],
  onIndex?: (index: string) => void,
): (options: TransportOptions) => Promise<TransportResponse> {
  const named = new Set(namedOrigins);
  /** Origins as written in a uri (`http://127.0.0.1:8200`) and what they parse to: a handful, never more. */
  const origins = new Map<string, Target>();

  /**
   * The uri as origin and path. WHATWG URL parses it, unless its origin was seen
   * before written exactly as URL writes origins and its path is one URL leaves as it is.
   */
  const parse = (uri: string): Target => {
    const slash = uri.indexOf('/', uri.indexOf('//') + 2);
    if (slash > 0) {
      const known = origins.get(uri.slice(0, slash));
      const path = uri.slice(slash);
      if (known && VERBATIM_PATH.test(path) && !DOT_SEGMENT.test(path))
        return {
          protocol: known.protocol,
          hostname: known.hostname,
          authorization: known.authorization,
          path,
          origin: known.origin,
        };
    }
    const target = targetOf(new URL(uri));
    if (slash > 0 && uri.slice(0, slash) === target.origin && !target.authorization && origins.size < 64)
      origins.set(target.origin, target);
    return target;
  };

  return async (options) => {
    const first = parse(options.uri);
    const attempt = new Attempt(first.origin);
    // One timer for the attempt, redirects included; when it fires the request in flight is
    // aborted (its connection closed, not pooled) and the attempt ends as an aborted one.
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(expire, Math.max(1, Math.floor(options.timeoutMs)), attempt).unref();
    const signal = options.signal;
    const onAbort = signal ? () => attempt.abort() : undefined;
    if (onAbort) signal?.addEventListener('abort', onAbort, { once: true });
    try {
      let current = options;
      let target = first;
      for (let hop = 0; ; hop++) {
        let answer: Answer;
        try {
          answer = await once(current, target, pool, attempt);
        } catch (err) {
          // A redirect target that cannot be reached (an HA standby pointing at the active
          // node that just died) says nothing about the address the operator named.
          if (hop > 0 && err instanceof VaultUnavailableError)
            throw new VaultUnavailableError(err.address, err.cause_, { viaRedirect: true });
          throw err;
        }
        const { status, location, index, text } = answer;
        if (index !== undefined) onIndex?.(index);
        if ((status === 307 || status === 308) && location && hop < MAX_REDIRECTS) {
          const next = new URL(location, current.uri);
          const from = target;
          if (from.protocol === 'https:' && next.protocol !== 'https:') {
            throw new DsoError(
              'ERR_VAULT',
              `Vault at ${from.origin} redirected to ${next.origin}, which is not https; refusing ` +
                `to send the token there`,
            );
          }
          if (!named.has(next.origin) && targetOf(next).hostname !== first.hostname) {
            throw new DsoError(
              'ERR_VAULT',
              `Vault at ${from.origin} redirected to ${next.origin}, which is not in VAULT_ADDR; ` +
                `refusing to send the token there (add ${next.origin} to VAULT_ADDR if it is one of ` +
                `your Vault nodes)`,
            );
          }
          current = { ...current, uri: next.toString() };
          target = targetOf(next);
          continue;
        }
        let body: unknown = text;
        if (text.length > 0) {
          try {
            body = JSON.parse(text);
          } catch {
            body = { errors: [`non-JSON answer (HTTP ${status})`] };
          }
        }
        const query = target.path.indexOf('?');
        return { statusCode: status, body, request: { path: query < 0 ? target.path : target.path.slice(0, query) } };
      }
    } finally {
      if (timer) clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  };
}
