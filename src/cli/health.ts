// Vault's own health endpoint (GET /v1/sys/health, no token needed), asked from the CLI
// for each configured address, with the plugin's CA file when it has one.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { healthState } from '../vault/errors';

export interface HealthTls {
  caFile?: string;
  serverName?: string;
  skipVerify?: boolean;
}

export interface VaultHealth {
  address: string;
  reachable: boolean;
  /**
   * HTTP status of sys/health: 200 active, 429 standby, 472/473 performance or DR standby,
   * 501 not initialized, 503 sealed.
   */
  status?: number;
  state: 'active' | 'standby' | 'sealed' | 'uninitialized' | 'unreachable' | 'error';
  healthy: boolean;
  initialized?: boolean;
  sealed?: boolean;
  version?: string;
  error?: string;
}

export type HealthChecker = (address: string, tls: HealthTls) => Promise<VaultHealth>;

export const checkVaultHealth: HealthChecker = (address, tls) =>
  new Promise((resolve) => {
    const fail = (error: string): void =>
      resolve({ address, reachable: false, state: 'unreachable', healthy: false, error });
    let url: URL;
    try {
      url = new URL('/v1/sys/health', address.replace(/\/+$/, '') + '/');
    } catch {
      return fail('not a valid URL');
    }
    const secure = url.protocol === 'https:';
    let ca: Buffer | undefined;
    if (secure && tls.caFile) {
      try {
        ca = fs.readFileSync(tls.caFile);
      } catch (err) {
        return fail(`cannot read the CA file ${tls.caFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
    }
    const options: https.RequestOptions = {
      method: 'GET',
      timeout: 5000,
      ...(secure ? { ca, servername: tls.serverName, rejectUnauthorized: !tls.skipVerify } : {}),
    };
    const req = (secure ? https : http).request(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        let body: { initialized?: boolean; sealed?: boolean; version?: string } = {};
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          // not Vault, or a proxy page
        }
        const state = healthState(status) ?? 'error';
        resolve({
          address,
          reachable: true,
          status,
          state,
          healthy: state === 'active' || state === 'standby',
          initialized: body.initialized,
          sealed: body.sealed,
          version: body.version,
          error: state === 'error' ? `unexpected HTTP ${status} from /v1/sys/health` : undefined,
        });
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('no answer within 5s'), { code: 'ETIMEDOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) =>
      fail(err.code === 'ETIMEDOUT' ? 'no answer within 5s' : (err.code ?? err.message)),
    );
    req.end();
  });
