// JWT: the token file (VAULT_JWT_FILE) is re-read at each login, since issuers rotate it.
import type { AuthMethod, LoginContext, LoginResult } from './method';
import { loginResult } from './method';
import { readCredentialFile } from './files';

export class JwtAuth implements AuthMethod {
  readonly name = 'jwt';
  readonly mount: string;

  constructor(
    mount: string,
    private readonly role: string,
    private readonly file: string,
  ) {
    this.mount = `auth/${mount}`;
  }

  async login({ vault, deadline }: LoginContext): Promise<LoginResult> {
    const jwt = readCredentialFile(this.file, 'VAULT_JWT_FILE');
    const body = await vault.call({
      method: 'POST',
      path: `${this.mount}/login`,
      body: { role: this.role, jwt },
      deadline,
    });
    return loginResult(body, this.mount);
  }

  hint(reason: string): string {
    if (/expired|exp/i.test(reason)) return `the JWT in ${this.file} has expired: have its issuer write a fresh one`;
    return `check VAULT_JWT_ROLE (${this.role}), the JWT in ${this.file} and the role's bound claims`;
  }
}
