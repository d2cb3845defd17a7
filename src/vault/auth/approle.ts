// AppRole: role id from VAULT_ROLE_ID or its file, secret id from VAULT_SECRET_ID_FILE.
// With VAULT_SECRET_ID_WRAPPED=true the file holds a response-wrapping token: it is
// unwrapped once (wrapping tokens are single-use) and the secret id is kept in memory only.
import { createHash } from 'node:crypto';
import { DsoError, ErrorSubcode } from '../../errors';
import type { AuthMethod, LoginContext, LoginResult } from './method';
import { postLogin } from './method';
import { readCredentialFile } from './files';

/** Vault's words for a role id or secret id it does not accept. */
const INVALID_CREDENTIALS = /invalid role.?id|invalid secret.?id|invalid role or secret id/i;

export interface AppRoleOptions {
  mount: string;
  roleId?: string;
  roleIdFile?: string;
  secretIdFile: string;
  wrapped: boolean;
}

export class AppRoleAuth implements AuthMethod {
  readonly name = 'approle';
  readonly mount: string;
  private unwrapped?: { wrapperDigest: string; secretId: string };

  constructor(private readonly options: AppRoleOptions) {
    this.mount = `auth/${options.mount}`;
  }

  async login(context: LoginContext): Promise<LoginResult> {
    const roleId = this.options.roleId ?? readCredentialFile(this.options.roleIdFile!, 'VAULT_ROLE_ID_FILE');
    return postLogin(context, this.mount, { role_id: roleId, secret_id: await this.secretId(context) });
  }

  private async secretId({ vault, deadline }: LoginContext): Promise<string> {
    const fromFile = readCredentialFile(this.options.secretIdFile, 'VAULT_SECRET_ID_FILE');
    if (!this.options.wrapped) return fromFile;
    const digest = createHash('sha256').update(fromFile).digest('hex');
    if (this.unwrapped?.wrapperDigest === digest) return this.unwrapped.secretId;
    let body: { data?: { secret_id?: string } };
    try {
      body = await vault.call({ method: 'POST', path: 'sys/wrapping/unwrap', token: fromFile, deadline });
    } catch (err) {
      if (err instanceof DsoError && (err.code === 'ERR_VAULT_DENIED' || err.code === 'ERR_VAULT')) {
        throw new DsoError(
          'ERR_LOGIN',
          `approle: the wrapping token in ${this.options.secretIdFile} cannot be unwrapped (${err.message}); ` +
            'it is single-use and may have expired or been used already: write a fresh wrapped secret id to that file',
          { subcode: 'wrapping-token' },
        );
      }
      throw err;
    }
    const secretId = body.data?.secret_id;
    if (!secretId) {
      const message = `approle: the wrapping token in ${this.options.secretIdFile} does not wrap a secret_id`;
      throw new DsoError('ERR_LOGIN', message, { subcode: 'wrapping-token' });
    }
    this.unwrapped = { wrapperDigest: digest, secretId };
    return secretId;
  }

  refusal(reason: string): ErrorSubcode | undefined {
    return !INVALID_CREDENTIALS.test(reason) && /permission denied|no handler/i.test(reason) ? 'auth-mount' : undefined;
  }

  hint(reason: string): string {
    if (INVALID_CREDENTIALS.test(reason)) {
      return (
        `check VAULT_ROLE_ID and the secret id in ${this.options.secretIdFile}; secret ids ` +
        `expire or run out of uses: generate a new one with "vault write -f ` +
        `${this.mount}/role/<role>/secret-id"`
      );
    }
    if (this.refusal(reason)) {
      return `is AppRole enabled at ${this.mount}? set VAULT_AUTH_MOUNT if it is mounted elsewhere`;
    }
    return 'check the AppRole role and secret id';
  }
}
