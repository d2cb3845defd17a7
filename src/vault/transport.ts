// The HTTP transport under node-vault: node's own http/https with keep-alive agents, a time
// limit (one timer, no AbortController per attempt), the caller's abort signal and a connect
// timeout on every attempt (so a hung or trickling address never keeps a pooled connection
// past its budget), 307/308 redirects followed only to an address
// the operator named (VAULT_ADDR, or the same host) and never from https to http, and
// errors that carry no request headers.
import * as http from 'node:http';
import * as https from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { DsoError } from '../errors';
import { VaultAbortedError, VaultUnavailableError } from './errors';

export interface TransportOptions {
  uri: string;
  method: string;
  headers?: Record<string, string>;
  json?: unknown;
  /** Aborts the attempt (its budget, or the caller's deadline); the socket is destroyed, not pooled. */
  signal?: AbortSignal;
  /** Milliseconds the whole attempt (redirects included) may take: then it ends as an abort does. */
  timeoutMs?: number;
  /** Milliseconds a new connection may take to be established. */
  connectTimeout?: number;
}

export interface TransportResponse {
  statusCode: number;
  body: unknown;
  request: { path: string };
}

export interface Agents {
  http: http.Agent;
  https: https.Agent;
}

const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
const MAX_REDIRECTS = 3;

function networkReason(err: NodeJS.ErrnoException): string {
  const known: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ECONNRESET: 'connection reset',
    ETIMEDOUT: 'connection timed out',
    EHOSTUNREACH: 'host unreachable',
    ENOTFOUND: 'host name not found',
    EAI_AGAIN: 'host name lookup failed',
    EPIPE: 'connection closed',
    ECONNECTTIMEOUT: 'connect timed out',
    DEPTH_ZERO_SELF_SIGNED_CERT: 'TLS: self-signed certificate (set VAULT_CACERT to its CA)',
    UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'TLS: certificate not signed by a trusted CA (set VAULT_CACERT)',
    SELF_SIGNED_CERT_IN_CHAIN: 'TLS: self-signed certificate in chain (set VAULT_CACERT to its CA)',
    ERR_TLS_CERT_ALTNAME_INVALID: 'TLS: certificate does not match the host name (set VAULT_TLS_SERVER_NAME)',
    CERT_HAS_EXPIRED: 'TLS: certificate has expired',
  };
  return known[err.code ?? ''] ?? `${err.code ?? 'network error'}`;
}

/** Where a request goes: what node's http.request takes, parsed once per origin. */
interface Target {
  protocol: string;
  hostname: string;
  port?: number;
  /** The Host header: host and port as the URL writes them (brackets for IPv6, no default port). */
  host: string;
  /** The Authorization header for credentials in the URL (user:password@), if any. */
  authorization?: string;
  path: string;
  origin: string;
}

/** A path that WHATWG URL parsing would leave exactly as it is: no dot segment, nothing to escape. */
const VERBATIM_PATH = /^\/[A-Za-z0-9_\-@+=:,~/%.]*(?:\?[A-Za-z0-9_\-@+=:,~/%.&]*)?$/;
/** A "." or ".." segment, or what URL would take for one ("%2e"): such a path is parsed. */
const DOT_SEGMENT = /\/\.\.?(?:[/?]|$)|%2e/i;

/** The Authorization header for the credentials written in `url`, as node sends its `auth` option. */
function basicAuthorization(url: URL): string {
  const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
  return `Basic ${Buffer.from(credentials).toString('base64')}`;
}

/** What node's http.request(url) would take from `url` (its urlToHttpOptions). */
function targetOf(url: URL): Target {
  return {
    protocol: url.protocol,
    // http.request wants an IPv6 literal without its brackets.
    hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
    port: url.port === '' ? undefined : Number(url.port),
    host: url.host,
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

/** A header's value from rawHeaders (names as sent, any case), without building res.headers. */
function rawHeader(raw: string[], lowerName: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2)
    if (raw[i].length === lowerName.length && raw[i].toLowerCase() === lowerName) return raw[i + 1];
  return undefined;
}

/** TCP keep-alive's initial delay on pooled sockets (node's default). */
const KEEP_ALIVE_PROBE_MS = 1000;
/** The server's idle timeout in a Keep-Alive header (`timeout=5, max=100`), in seconds. */
const KEEP_ALIVE_TIMEOUT = /^timeout=(\d+)/;

/**
 * Node's Agent.keepSocketAlive (a socket back to the pool once its response has ended) without
 * building the response's header object to read one header (it runs once for every request):
 * it reads the server's Keep-Alive hint from the raw headers. As node's, for an agent
 * without a timeout: the socket keeps no timeout, and a hint of a second or less means the
 * server closes it too soon to reuse it.
 */
function keepSocketAlive(socket: Duplex): boolean {
  const pooled = socket as Socket & { _httpMessage?: { res?: http.IncomingMessage } };
  pooled.setKeepAlive(true, KEEP_ALIVE_PROBE_MS);
  pooled.unref();
  if (pooled.timeout) pooled.setTimeout(0);
  const raw = pooled._httpMessage?.res?.rawHeaders;
  const hint = raw && rawHeader(raw, 'keep-alive');
  const seconds = hint ? KEEP_ALIVE_TIMEOUT.exec(hint)?.[1] : undefined;
  return !seconds || Number(seconds) > 1;
}

type FreeListener = (socket: Socket, options: unknown) => void;
/** http.Agent's addRequest (how every ClientRequest gets its socket), not in node's typings. */
interface AddRequest {
  addRequest: (...args: unknown[]) => void;
}

/**
 * Node's agent takes a socket whose response has ended back into its pool in a
 * process.nextTick callback (its 'free' listener), and nextTick callbacks run before any
 * promise continuation: every GetSecret's reply waited for that bookkeeping. The agent's own
 * listener still does it, in the same turn of the event loop, right after the promise
 * continuations queued by then (the reply): a microtask queues the nextTick. No I/O event
 * can be delivered in between, so the socket is never without the error listener the agent
 * gives a pooled socket while an error could reach it. A request made meanwhile (the next of
 * reads made one after the other) first puts the waiting sockets back, so it reuses one as
 * before.
 */
function poolAfterContinuations(agent: http.Agent): void {
  const pool = agent.listeners('free') as FreeListener[];
  agent.removeAllListeners('free');
  let sockets: Socket[] = [];
  let options: unknown[] = [];
  const drain = () => {
    if (sockets.length === 0) return;
    // Swapped first: what the listeners do never sees this batch again.
    const freed = sockets;
    const their = options;
    sockets = [];
    options = [];
    for (let i = 0; i < freed.length; i++) for (const listener of pool) listener.call(agent, freed[i], their[i]);
  };
  const afterContinuations = () => process.nextTick(drain);
  // A resolved promise's then() is a plain V8 microtask; node's queueMicrotask adds an async resource to each.
  const settled = Promise.resolve();
  agent.on('free', (socket: Socket, requestOptions: unknown) => {
    options.push(requestOptions);
    if (sockets.push(socket) === 1) void settled.then(afterContinuations);
  });
  const { addRequest } = agent as unknown as AddRequest;
  (agent as unknown as AddRequest).addRequest = function (this: http.Agent, ...args: unknown[]) {
    drain();
    return addRequest.apply(this, args);
  };
}

/** Keep-alive agents shared by every address, so connections are reused, not re-handshaken. */
export function createAgents(tls: https.AgentOptions): Agents {
  const agents = {
    http: new http.Agent({ keepAlive: true, keepAliveMsecs: KEEP_ALIVE_PROBE_MS, maxSockets: 64 }),
    https: new https.Agent({ keepAlive: true, keepAliveMsecs: KEEP_ALIVE_PROBE_MS, maxSockets: 64, ...tls }),
  };
  for (const agent of [agents.http, agents.https]) {
    agent.keepSocketAlive = keepSocketAlive;
    poolAfterContinuations(agent);
  }
  return agents;
}

/** One attempt: the request in flight and whether its time ran out (then it ends as an abort). */
interface Attempt {
  request: http.ClientRequest | undefined;
  expired: boolean;
}

/** An attempt's timer: a module function given the attempt, not a closure per request. */
function expire(attempt: Attempt): void {
  attempt.expired = true;
  attempt.request?.destroy(Object.assign(new Error('attempt timed out'), { name: 'AbortError' }));
}

function once(options: TransportOptions, target: Target, agents: Agents, attempt: Attempt): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const isHttps = target.protocol === 'https:';
    const payload = options.json === undefined ? undefined : Buffer.from(JSON.stringify(options.json));
    // The headers as a flat list (name, value, ...), written out by node as they are: an object
    // costs a setHeader per header (a lowercased copy of the name, an entry in a map). Given a
    // list, node adds neither Host nor Authorization itself: they are here.
    const headers: string[] = ['Host', target.host];
    if (target.authorization !== undefined) headers.push('Authorization', target.authorization);
    if (options.headers?.Accept === undefined) headers.push('Accept', 'application/json');
    for (const name in options.headers) headers.push(name, options.headers[name]);
    if (payload) headers.push('Content-Type', 'application/json', 'Content-Length', String(payload.length));
    if (options.signal?.aborted || attempt.expired) {
      reject(new VaultAbortedError(target.origin));
      return;
    }
    // Only what is set: node copies every property of these twice per request (ClientRequest,
    // then the agent), undefined ones too. The protocol is the module's (http or https).
    const requestOptions: http.RequestOptions = {
      hostname: target.hostname,
      port: target.port,
      path: target.path,
      method: options.method,
      headers,
      agent: isHttps ? agents.https : agents.http,
    };
    if (options.signal) requestOptions.signal = options.signal;
    const req = (isHttps ? https : http).request(requestOptions);
    attempt.request = req;
    let connectTimer: NodeJS.Timeout | undefined;
    const clearConnectTimer = () => {
      if (connectTimer) clearTimeout(connectTimer);
      connectTimer = undefined;
    };
    // Only a new connection is timed; a pooled one is already connected.
    req.on('socket', (socket) => {
      if (!socket.connecting || options.connectTimeout === undefined) return;
      connectTimer = setTimeout(
        () => req.destroy(Object.assign(new Error('connect timed out'), { code: 'ECONNECTTIMEOUT' })),
        options.connectTimeout,
      );
      socket.once('connect', clearConnectTimer);
      req.once('close', clearConnectTimer);
    });
    const fail = (err: NodeJS.ErrnoException) => {
      clearConnectTimer();
      if (options.signal?.aborted || attempt.expired || err.name === 'AbortError')
        reject(new VaultAbortedError(target.origin));
      else reject(new VaultUnavailableError(target.origin, networkReason(err)));
    };
    req.on('error', fail);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) {
          req.destroy(Object.assign(new Error('response too large'), { code: 'ERESPONSETOOLARGE' }));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          // res.headers is built from the raw headers when first read: only a redirect needs it.
          location: res.statusCode === 307 || res.statusCode === 308 ? res.headers.location : undefined,
          index: rawHeader(res.rawHeaders, 'x-vault-index'),
          text: chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks, size).toString('utf8'),
        }),
      );
      res.on('error', fail);
      res.on('aborted', () => fail(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })));
    });
    req.end(payload);
  });
}

/**
 * A request function in the shape node-vault's `request-promise` option expects. Redirects
 * are followed only to `namedOrigins` (the VAULT_ADDR entries) or the host first asked, so
 * the token never travels to a host the operator did not name. `onIndex` is handed each
 * answer's X-Vault-Index (OpenBao 2.7 and later), reads and node-vault's writes alike.
 */
export function createTransport(
  agents: Agents,
  namedOrigins: Iterable<string> = [],
  onIndex?: (index: string) => void,
): (options: TransportOptions) => Promise<TransportResponse> {
  const named = new Set(namedOrigins);
  /** Origins as written in a uri (`http://127.0.0.1:8200`) and what they parse to: a handful, never more. */
  const origins = new Map<string, Target>();

  /**
   * The uri as http.request takes it. WHATWG URL parses it, unless its origin was seen
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
          port: known.port,
          host: known.host,
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
    const attempt: Attempt = { request: undefined, expired: false };
    // One timer for the attempt, redirects included; when it fires the request in flight is
    // destroyed (its socket is not pooled) and the attempt ends as an aborted one.
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(expire, Math.max(1, Math.floor(options.timeoutMs)), attempt).unref();
    try {
      let current = options;
      const first = parse(options.uri);
      let target = first;
      for (let hop = 0; ; hop++) {
        let answer: Answer;
        try {
          answer = await once(current, target, agents, attempt);
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
    }
  };
}
