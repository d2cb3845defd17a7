// The HTTP transport under node-vault: node's own http/https with keep-alive agents, a
// deadline and an abort signal on every request, 307/308 redirects followed without
// handing the token to a plain-http address, and errors that carry no request headers.
import * as http from 'node:http';
import * as https from 'node:https';
import { DsoError } from '../errors';
import { VaultUnavailableError } from './errors';

export interface TransportOptions {
  uri: string;
  method: string;
  headers?: Record<string, string>;
  json?: unknown;
  signal?: AbortSignal;
  /** Milliseconds until the request is abandoned. */
  timeout?: number;
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
    DEPTH_ZERO_SELF_SIGNED_CERT: 'TLS: self-signed certificate (set VAULT_CACERT to its CA)',
    UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'TLS: certificate not signed by a trusted CA (set VAULT_CACERT)',
    SELF_SIGNED_CERT_IN_CHAIN: 'TLS: self-signed certificate in chain (set VAULT_CACERT to its CA)',
    ERR_TLS_CERT_ALTNAME_INVALID: 'TLS: certificate does not match the host name (set VAULT_TLS_SERVER_NAME)',
    CERT_HAS_EXPIRED: 'TLS: certificate has expired',
  };
  return known[err.code ?? ''] ?? `${err.code ?? 'network error'}`;
}

function once(options: TransportOptions, agents: Agents): Promise<{ status: number; location?: string; text: string }> {
  return new Promise((resolve, reject) => {
    const url = new URL(options.uri);
    const isHttps = url.protocol === 'https:';
    const payload = options.json === undefined ? undefined : Buffer.from(JSON.stringify(options.json));
    const headers: Record<string, string | number> = { Accept: 'application/json', ...options.headers };
    if (payload) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = payload.length;
    }
    const req = (isHttps ? https : http).request(url, {
      method: options.method,
      headers,
      agent: isHttps ? agents.https : agents.http,
      signal: options.signal,
      timeout: options.timeout,
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.name === 'AbortError') reject(new DsoError('ERR_TIMEOUT', `request to Vault at ${url.origin} abandoned at the deadline`));
      else reject(new VaultUnavailableError(url.origin, networkReason(err)));
    });
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
      res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (err: NodeJS.ErrnoException) => reject(new VaultUnavailableError(url.origin, networkReason(err))));
    });
    req.end(payload);
  });
}

/** A request function in the shape node-vault's `request-promise` option expects. */
export function createTransport(agents: Agents): (options: TransportOptions) => Promise<TransportResponse> {
  return async (options) => {
    let current = { ...options };
    for (let hop = 0; ; hop++) {
      const { status, location, text } = await once(current, agents);
      if ((status === 307 || status === 308) && location && hop < MAX_REDIRECTS) {
        const target = new URL(location, current.uri);
        const from = new URL(current.uri);
        if (from.protocol === 'https:' && target.protocol !== 'https:') {
          throw new DsoError('ERR_VAULT', `Vault at ${from.origin} redirected to ${target.origin}, which is not https; refusing to send the token there`);
        }
        current = { ...current, uri: target.toString() };
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
      return { statusCode: status, body, request: { path: new URL(current.uri).pathname } };
    }
  };
}
