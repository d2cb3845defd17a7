// What to do about each failure the plugin reports: the README's troubleshooting table,
// keyed by the plugin's stable error codes and, where one code has several fixes, by its
// subcode (errors.ts ErrorSubcode) and the auth method in use; never by message text.
import type { Failure } from '../errors';

export interface FixContext {
  plugin: string;
  /** Auth method in use (approle, token, ...), when known. */
  method?: string;
  /** Auth mount, e.g. auth/approle. */
  mount?: string;
  /** Vault API path that failed, when known. */
  path?: string;
}

function pathFrom(error: string): string | undefined {
  return /\b(?:reading|on|for) ([A-Za-z0-9_.\-@+=:,~{}/]+?)(?::|\s|$)/.exec(error)?.[1];
}

/** Lines telling the user how to fix a failure; only a path is taken from its message, when none is known. */
export function fixFor({ code, subcode, error = '' }: Failure, ctx: FixContext): string {
  const p = ctx.plugin;
  const mount = ctx.mount ?? (ctx.method ? `auth/${ctx.method}` : 'auth/approle');
  if (subcode === 'engine-failed') {
    return (
      'Vault could not issue the secret (for a database engine: database down or role ' +
      "misconfigured); Vault's reason ends the message: fix the engine's backend or its role"
    );
  }
  if (subcode === 'engine-path')
    return 'the engine has no such role or path: check the role name in the reference (vault list <mount>/roles)';
  switch (code) {
    case 'ERR_LOGIN':
      if (subcode === 'wrapping-token')
        return (
          `write a fresh response-wrapped secret id: docker dso init --plugin ${p} ` +
          `--vault-secret-id - --vault-secret-id-wrapped`
        );
      if (subcode === 'auth-mount') {
        return (
          `AppRole must be enabled at ${mount} (vault auth enable approle), or set the mount: ` +
          `docker dso init --plugin ${p} --vault-auth-mount <path>`
        );
      }
      switch (ctx.method) {
        case 'token':
          return (
            `the token is invalid or expired: write a valid one with docker dso init --plugin ` +
            `${p} --vault-token - (the plugin re-reads its token file)`
          );
        case 'jwt':
          return `check the JWT file and VAULT_JWT_ROLE (the role's bound claims must match the JWT)`;
        case 'cert':
          return (
            `check VAULT_CLIENT_CERT/VAULT_CLIENT_KEY and that the cert auth method trusts that ` +
            `certificate (VAULT_CERT_ROLE)`
          );
        case 'approle':
          return [
            `the secret id expired, ran out of uses, or belongs to another role: generate a new one`,
            `  (vault write -f ${mount}/role/<role>/secret-id) and hand it over on standard input:`,
            `  docker dso init --plugin ${p} --vault-secret-id -`,
          ].join('\n');
        default:
          return `check the auth method's credentials: docker dso init --plugin ${p} ...`;
      }
    case 'ERR_VAULT_DENIED': {
      const path = ctx.path ?? pathFrom(error) ?? '<path>';
      return [
        `the plugin's Vault policy does not allow reading ${path}: add to its policy`,
        `  path "${path}" { capabilities = ["read"] }`,
        `  (for a KV v2 secret the API path has data/ after the mount, e.g. secret/data/app/db)`,
      ].join('\n');
    }
    case 'ERR_PATH_REFUSED':
      return (
        `fix the secret's dso.ref label, or widen DSO_ALLOWED_PATHS: docker dso init --plugin ` +
        `${p} --set DSO_ALLOWED_PATHS=<patterns>`
      );
    case 'ERR_WRITE_REFUSED':
      return (
        `remove the query string from the secret's dso.ref, or allow that write: add the ` +
        `entry the error names to DSO_ALLOWED_WRITES: docker dso init --plugin ${p} --set ` +
        `'DSO_ALLOWED_WRITES=<path>?<param>,<param>'`
      );
    case 'ERR_FIELD_MISSING':
      return 'use one of the fields listed in the error after "#" in the reference';
    case 'ERR_NOT_FOUND':
      return (
        'nothing is stored at that path: check the path (vault kv get <path>) and, for KV v2, ' +
        'the version asked for'
      );
    case 'ERR_VAULT_UNAVAILABLE':
      return (
        `start or unseal Vault, or fix the address: docker dso init --plugin ${p} ` +
        `--vault-address https://vault:8200 (several may be given for failover)`
      );
    case 'ERR_TIMEOUT':
      return (
        `check the network between this node and Vault; if Vault is merely slow, raise ` +
        `DSO_TIMEOUT (under 30s): docker dso init --plugin ${p} --set DSO_TIMEOUT=20s`
      );
    case 'ERR_VALUE_EMPTY':
    case 'ERR_VALUE_TOO_LARGE':
      return 'Docker mounts only 1 to 511,999 bytes: store a non-empty, smaller value';
    case 'ERR_SETTINGS':
      return (
        `fix the setting named above: docker dso init --plugin ${p} ... (it disables the ` +
        `plugin, sets, and enables it again)`
      );
    case 'ERR_REFERENCE':
    case 'ERR_LABELS':
    case 'ERR_TEMPLATE':
      return "fix the secret's labels: dso.ref=dso://<path>[#<field>] (see the README's label table)";
    case 'ERR_FORMAT':
      return 'fix the dso.format label (raw, json, env or base64) or the field it is applied to';
    case 'ERR_UNSUPPORTED':
      return 'this kind of secret is not supported by DSO (see the README for what a reference can point at)';
    case 'ERR_VAULT':
      return "see the plugin's log (dockerd's log, lines with plugin=<id>) for Vault's full answer";
    default:
      return "see the plugin's log (dockerd's log, lines with plugin=<id>)";
  }
}
