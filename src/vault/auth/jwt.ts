// JWT: the token file (VAULT_JWT_FILE) is re-read at each login, since issuers rotate it.
import type { AuthMethod, LoginContext, LoginResult } from './method';
import { postLogin } from './method';
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

  async login(context: LoginContext): Promise<LoginResult> {
    const jwt = readCredentialFile(this.file, 'VAULT_JWT_FILE');
    return postLogin(context, this.mount, { role: this.role, jwt });
  }

  hint(reason: string): string {
    if (/expired|exp/i.test(reason)) return `the JWT in ${this.file} has expired: have its issuer write a fresh one`;
    return `check VAULT_JWT_ROLE (${this.role}), the JWT in ${this.file} and the role's bound claims`;
  }
}
