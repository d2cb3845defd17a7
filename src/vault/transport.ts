// The HTTP transport under node-vault: node's own http/https with keep-alive agents, an
// abort signal and a connect timeout on every attempt (so a hung or trickling address never
// keeps a pooled connection past its budget), 307/308 redirects followed only to an address
// the operator named (VAULT_ADDR, or the same host) and never from https to http, and
// errors that carry no request headers.
import * as http from 'node:http';
import * as https from 'node:https';
import { DsoError } from '../errors';
import { VaultAbortedError, VaultUnavailableError } from './errors';

export interface TransportOptions {
  uri: string;
  method: string;
  headers?: Record<string, string>;
  json?: unknown;
  /** Aborts the attempt (its budget, or the caller's deadline); the socket is destroyed, not pooled. */
  signal?: AbortSignal;
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

function once(
  options: TransportOptions,
  url: URL,
  agents: Agents,
): Promise<{ status: number; location?: string; text: string }> {
  return new Promise((resolve, reject) => {
    const isHttps = url.protocol === 'https:';
    const payload = options.json === undefined ? undefined : Buffer.from(JSON.stringify(options.json));
    const headers: Record<string, string | number> = { Accept: 'application/json', ...options.headers };
    if (payload) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = payload.length;
    }
    if (options.signal?.aborted) {
      reject(new VaultAbortedError(url.origin));
      return;
    }
    const req = (isHttps ? https : http).request(url, {
      method: options.method,
      headers,
      agent: isHttps ? agents.https : agents.http,
      signal: options.signal,
    });
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
    });
    req.on('close', clearConnectTimer);
    const fail = (err: NodeJS.ErrnoException) => {
      clearConnectTimer();
      if (options.signal?.aborted || err.name === 'AbortError') reject(new VaultAbortedError(url.origin));
      else reject(new VaultUnavailableError(url.origin, networkReason(err)));
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
          location: res.headers.location,
          text: Buffer.concat(chunks).toString('utf8'),
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
 * the token never travels to a host the operator did not name.
 */
export function createTransport(
  agents: Agents,
  namedOrigins: Iterable<string> = [],
): (options: TransportOptions) => Promise<TransportResponse> {
  const named = new Set(namedOrigins);
  return async (options) => {
    let current = options;
    const first = new URL(options.uri);
    let url = first;
    for (let hop = 0; ; hop++) {
      let answer: { status: number; location?: string; text: string };
      try {
        answer = await once(current, url, agents);
      } catch (err) {
        // A redirect target that cannot be reached (an HA standby pointing at the active
        // node that just died) says nothing about the address the operator named.
        if (hop > 0 && err instanceof VaultUnavailableError)
          throw new VaultUnavailableError(err.address, err.cause_, { viaRedirect: true });
        throw err;
      }
      const { status, location, text } = answer;
      if ((status === 307 || status === 308) && location && hop < MAX_REDIRECTS) {
        const target = new URL(location, current.uri);
        const from = url;
        if (from.protocol === 'https:' && target.protocol !== 'https:') {
          throw new DsoError(
            'ERR_VAULT',
            `Vault at ${from.origin} redirected to ${target.origin}, which is not https; refusing ` +
              `to send the token there`,
          );
        }
        if (!named.has(target.origin) && target.hostname !== first.hostname) {
          throw new DsoError(
            'ERR_VAULT',
            `Vault at ${from.origin} redirected to ${target.origin}, which is not in VAULT_ADDR; ` +
              `refusing to send the token there (add ${target.origin} to VAULT_ADDR if it is one of ` +
              `your Vault nodes)`,
          );
        }
        current = { ...current, uri: target.toString() };
        url = target;
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
      return { statusCode: status, body, request: { path: url.pathname } };
    }
  };
}
