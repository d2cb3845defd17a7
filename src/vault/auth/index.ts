// Picks the login method named by VAULT_AUTH_METHOD.
import type { Settings } from '../../config/settings';
import { AppRoleAuth } from './approle';
import { CertAuth } from './cert';
import { JwtAuth } from './jwt';
import type { AuthMethod } from './method';
import { TokenFileAuth } from './token';

export function authMethodFor(settings: Settings): AuthMethod {
  switch (settings.authMethod) {
    case 'token':
      return new TokenFileAuth(settings.tokenFile!);
    case 'approle':
      return new AppRoleAuth({
        mount: settings.authMount,
        roleId: settings.roleId,
        roleIdFile: settings.roleIdFile,
        secretIdFile: settings.secretIdFile!,
        wrapped: settings.secretIdWrapped,
      });
    case 'jwt':
      return new JwtAuth(settings.authMount, settings.jwtRole!, settings.jwtFile!);
    case 'cert':
      return new CertAuth(settings.authMount, settings.certRole);
  }
}
