// TLS certificate login: the client certificate (VAULT_CLIENT_CERT/KEY) is presented by the
// transport; the login names the role. A plain write, not node-vault's fixed-mount certLogin.
import type { AuthMethod, LoginContext, LoginResult } from './method';
import { postLogin } from './method';

export class CertAuth implements AuthMethod {
  readonly name = 'cert';
  readonly mount: string;

  constructor(
    mount: string,
    private readonly role?: string,
  ) {
    this.mount = `auth/${mount}`;
  }

  login(context: LoginContext): Promise<LoginResult> {
    return postLogin(context, this.mount, this.role ? { name: this.role } : {});
  }

  hint(): string {
    return (
      'check that VAULT_CLIENT_CERT is trusted by the cert role (VAULT_CERT_ROLE) and that ' +
      'Vault is reached over https'
    );
  }
}
