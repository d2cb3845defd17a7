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

/** A login written to `<mount>/login` with `body`, and the `auth` block of Vault's answer. */
export async function postLogin(
  { vault, deadline }: LoginContext,
  mount: string,
  body: Record<string, unknown>,
): Promise<LoginResult> {
  const answer = await vault.call<VaultAuthBlock>({ method: 'POST', path: `${mount}/login`, body, deadline });
  const auth = answer?.auth;
  if (!auth?.client_token) throw new DsoError('ERR_LOGIN', `${mount}: Vault's answer holds no token`);
  return {
    token: auth.client_token,
    ttlSeconds: auth.lease_duration ?? 0,
    renewable: auth.renewable ?? false,
    policies: auth.policies ?? [],
  };
}
