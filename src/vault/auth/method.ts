// The one interface every login method implements: build the login, report the token.
// Renewal, re-login, backoff and single-flight live once, in ../token.ts.
import { DsoError, ErrorSubcode } from '../../errors';
import type { VaultClient } from '../client';

export interface LoginResult {
  token: string;
  /** Seconds; 0 means the token never expires. */
  ttlSeconds: number;
  renewable: boolean;
  policies: string[];
}

export interface LoginContext {
  vault: VaultClient;
  deadline: number;
}

export interface AuthMethod {
  readonly name: string;
  /** Where it logs in, for messages, e.g. auth/approle. */
  readonly mount: string;
  login(context: LoginContext): Promise<LoginResult>;
  /** A hint for the operator when login fails with Vault's `reason`. */
  hint(reason: string): string;
  /** Which of the fixes `docker dso` knows applies, when not the credentials themselves. */
  refusal?(reason: string): ErrorSubcode | undefined;
}

interface VaultAuthBlock {
  auth?: { client_token?: string; lease_duration?: number; renewable?: boolean; policies?: string[] | null };
}

/** The `auth` block of a login response. */
export function loginResult(body: unknown, where: string): LoginResult {
  const auth = (body as VaultAuthBlock | undefined)?.auth;
  if (!auth?.client_token) throw new DsoError('ERR_LOGIN', `${where}: Vault's answer holds no token`);
  return {
    token: auth.client_token,
    ttlSeconds: auth.lease_duration ?? 0,
    renewable: auth.renewable ?? false,
    policies: auth.policies ?? [],
  };
}
