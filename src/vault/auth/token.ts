// Token method: a token from VAULT_TOKEN_FILE, re-read at each "login" so an operator can
// replace it; its TTL and renewability are learned from lookup-self.
import type { AuthMethod, LoginContext, LoginResult } from './method';
import { readCredentialFile } from './files';

interface LookupSelf {
  data?: { ttl?: number; renewable?: boolean; policies?: string[] };
}

export class TokenFileAuth implements AuthMethod {
  readonly name = 'token';
  readonly mount = 'auth/token';

  constructor(private readonly file: string) {}

  async login({ vault, deadline }: LoginContext): Promise<LoginResult> {
    const token = readCredentialFile(this.file, 'VAULT_TOKEN_FILE');
    const body = await vault.call<LookupSelf>({ method: 'GET', path: 'auth/token/lookup-self', token, deadline });
    return {
      token,
      ttlSeconds: body.data?.ttl ?? 0,
      renewable: body.data?.renewable ?? false,
      policies: body.data?.policies ?? [],
    };
  }

  hint(reason: string): string {
    if (/permission denied|bad token|invalid token/i.test(reason)) {
      return (
        `the token in ${this.file} is invalid or expired: write a valid token to that file ` +
        `(the plugin re-reads it)`
      );
    }
    return `check the token in ${this.file}`;
  }
}
