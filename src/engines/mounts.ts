// Which secrets engine serves a path, asked of Vault (sys/internal/ui/mounts/<path>),
// never guessed. Answers are cached per mount, so one lookup serves every path below it.
import { DsoError } from '../errors';
import { VaultApiError } from '../vault/errors';
import type { VaultSession, Workload } from '../vault/session';
import { SingleFlight } from '../singleflight';

/**
 * Mount types DSO reads from: secrets engines that store or issue credentials. Anything
 * else is refused after the mount lookup: auth methods (`approle`, `token`...), `system`,
 * `identity`, `cubbyhole` and their namespaced `ns_` forms, and plugins DSO does not know.
 * Some auth methods share a type name with a secrets engine (`kubernetes`, `aws`...):
 * those are told apart by `authMethod` below, never by the type.
 */
export const SECRET_ENGINE_TYPES: ReadonlySet<string> = new Set([
  'kv',
  'generic',
  'database',
  'pki',
  'ssh',
  'transit',
  'totp',
  'aws',
  'azure',
  'gcp',
  'gcpkms',
  'alicloud',
  'consul',
  'nomad',
  'rabbitmq',
  'ldap',
  'openldap',
  'ad',
  'kubernetes',
  'terraform',
  'mongodbatlas',
]);

export interface MountInfo {
  /** With a trailing slash, as Vault writes it: `secret/`. */
  path: string;
  type: string;
  /** KV version (1 or 2) for kv mounts. */
  kvVersion?: 1 | 2;
  /**
   * An auth method, not a secrets engine. Types do not tell: `kubernetes`, `aws`, `gcp`,
   * `azure`, `ldap` name both. Vault gives auth mounts accessors `auth_<type>_...` and
   * reports them at `[<namespace>/]auth/<path>/`.
   */
  authMethod?: boolean;
}

interface MountAnswer {
  data?: { path?: string; type?: string; accessor?: string; options?: { version?: string } | null };
}

export class MountResolver {
  private readonly cache = new Map<string, { info: MountInfo; at: number }>();
  private readonly flights = new SingleFlight<MountInfo>();

  constructor(
    private readonly session: VaultSession,
    private readonly ttlMs = 5 * 60_000,
  ) {}

  /**
   * The mount from the cache when it is there, else a promise of Vault's answer: the usual
   * case (a cached mount) costs the caller no promise and no turn of the event loop.
   */
  find(path: string, deadline: number, workload?: Workload): MountInfo | Promise<MountInfo> {
    return this.cached(path) ?? this.ask(path, deadline, workload);
  }

  private ask(path: string, deadline: number, workload?: Workload): Promise<MountInfo> {
    return this.flights.run(path, async () => {
      let answer: MountAnswer;
      try {
        answer = await this.session.call<MountAnswer>({
          method: 'GET',
          path: `sys/internal/ui/mounts/${path}`,
          deadline,
          workload,
        });
      } catch (err) {
        if (err instanceof VaultApiError && err.status === 403) {
          throw new DsoError(
            'ERR_VAULT_DENIED',
            `permission denied for ${path}: no secrets engine is mounted there, or the plugin's ` +
              `Vault policy does not allow reading it (Vault: ${err.reason})`,
          );
        }
        if (err instanceof VaultApiError && (err.status === 400 || err.status === 404)) {
          throw new DsoError(
            'ERR_NOT_FOUND',
            `no secrets engine is mounted at ${path.split('/')[0]}/ (Vault: ${err.reason})`,
          );
        }
        throw err;
      }
      const data = answer.data;
      if (!data?.path || !data.type) throw new DsoError('ERR_NOT_FOUND', `no secrets engine is mounted for ${path}`);
      const info: MountInfo = { path: data.path, type: data.type };
      if (String(data.accessor ?? '').startsWith('auth_') || data.path.split('/').includes('auth'))
        info.authMethod = true;
      if (data.type === 'kv' || data.type === 'generic') info.kvVersion = data.options?.version === '2' ? 2 : 1;
      // An answer for a mount that does not contain the path is refused by the driver; kept
      // out of the cache, it can never stand in for the paths it does not describe.
      if (`${path}/`.startsWith(info.path)) this.cache.set(info.path, { info, at: Date.now() });
      return info;
    });
  }

  /** The longest cached mount that is a prefix of `path`. */
  private cached(path: string): MountInfo | undefined {
    let best: MountInfo | undefined;
    const now = Date.now();
    const below = `${path}/`;
    for (const [mount, entry] of this.cache) {
      if (now - entry.at > this.ttlMs) {
        this.cache.delete(mount);
        continue;
      }
      if (below.startsWith(mount) && (!best || mount.length > best.path.length)) best = entry.info;
    }
    return best;
  }
}
