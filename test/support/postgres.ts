// A real PostgreSQL for database-credential tests: a cluster of its own ("dsotest",
// created with Debian's pg_createcluster on first use, started with pg_ctlcluster), and
// an admin role for OpenBao's database engine with a password made up per run.
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { Client } from 'pg';
import { secret } from './capture';

export const PG_CLUSTER = 'dsotest';
// Below the ephemeral port range (32768-60999): while the server is down, clients that
// retry could otherwise be handed this very port and connect to themselves, holding it.
export const PG_PORT = 15432;

export interface Postgres {
  port: number;
  adminUser: string;
  adminPassword: string;
  /** Connects as `user`; resolves true when the login works. */
  canLogin(user: string, password: string): Promise<boolean>;
  /** Names of roles matching a LIKE pattern. */
  roles(like: string): Promise<string[]>;
  /** Asynchronous, so a plugin in the same process keeps serving meanwhile. */
  stop(): Promise<void>;
  start(): Promise<void>;
}

function pgVersion(): string {
  const versions = fs
    .readdirSync('/usr/lib/postgresql')
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error('PostgreSQL is not installed: run scripts/install-system-deps.sh');
  return versions[0];
}

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function asPostgres(sql: string, port: number): void {
  run('runuser', [
    '-u',
    'postgres',
    '--',
    'psql',
    '-X',
    '-q',
    '-p',
    String(port),
    '-h',
    '/var/run/postgresql',
    '-d',
    'postgres',
    '-v',
    'ON_ERROR_STOP=1',
    '-c',
    sql,
  ]);
}

let shared: Postgres | undefined;

export function sharedPostgres(): Postgres {
  if (shared) return shared;
  const version = pgVersion();
  const line = run('pg_lsclusters', ['-h'])
    .split('\n')
    .find((l) => l.split(/\s+/)[1] === PG_CLUSTER);
  // A cluster left by an earlier run on another port is made again.
  if (line && line.split(/\s+/)[2] !== String(PG_PORT))
    run('pg_dropcluster', ['--stop', line.split(/\s+/)[0], PG_CLUSTER]);
  if (!line || line.split(/\s+/)[2] !== String(PG_PORT))
    run('pg_createcluster', [
      version,
      PG_CLUSTER,
      '-p',
      String(PG_PORT),
      '--',
      '--auth-host=scram-sha-256',
      '--auth-local=peer',
    ]);
  const status = () =>
    run('pg_lsclusters', ['-h'])
      .split('\n')
      .find((l) => l.split(/\s+/)[1] === PG_CLUSTER) ?? '';
  const start = () => {
    if (!/\bonline\b/.test(status())) run('pg_ctlcluster', [version, PG_CLUSTER, 'start']);
  };
  start();
  const ctl = (action: string, ...args: string[]) =>
    new Promise<void>((resolve, reject) =>
      execFile('pg_ctlcluster', [version, PG_CLUSTER, action, ...args], (err) => (err ? reject(err) : resolve())),
    );
  const adminUser = 'vault_admin_for_dso';
  // Fixed, not random: test processes that run side by side share this cluster.
  const adminPassword = secret('dso-test-pg-admin-7c41e9');
  asPostgres(
    `DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${adminUser}') THEN CREATE ROLE ${adminUser} LOGIN SUPERUSER; END IF; END $$; ALTER ROLE ${adminUser} PASSWORD '${adminPassword}';`,
    PG_PORT,
  );
  const connect = async (user: string, password: string) => {
    const client = new Client({
      host: '127.0.0.1',
      port: PG_PORT,
      user,
      password,
      database: 'postgres',
      connectionTimeoutMillis: 5000,
    });
    await client.connect();
    return client;
  };
  shared = {
    port: PG_PORT,
    adminUser,
    adminPassword,
    async canLogin(user, password) {
      try {
        const client = await connect(user, password);
        await client.query('SELECT 1');
        await client.end();
        return true;
      } catch {
        return false;
      }
    },
    async roles(like) {
      const client = await connect(adminUser, adminPassword);
      try {
        const result = await client.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE rolname LIKE $1', [
          like,
        ]);
        return result.rows.map((r) => r.rolname);
      } finally {
        await client.end();
      }
    },
    stop: () => ctl('stop', '-m', 'fast'),
    // Right after a stop the port can still be held for a moment: try again briefly.
    start: async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          if (/\bonline\b/.test(status())) return;
          await ctl('start');
          return;
        } catch (err) {
          if (attempt >= 10) throw err;
          await new Promise((r) => setTimeout(r, 300));
        }
      }
    },
  };
  return shared;
}

/** OpenBao's database engine at `mount`, connected to PostgreSQL, with role `role`. */
export async function configureDatabaseEngine(
  api: (method: string, path: string, body?: unknown) => Promise<unknown>,
  pg: Postgres,
  options: { mount?: string; role?: string; defaultTtl?: string; maxTtl?: string } = {},
): Promise<void> {
  const mount = options.mount ?? 'database';
  const role = options.role ?? 'app';
  await api('POST', `sys/mounts/${mount}`, { type: 'database' }).catch(() => undefined);
  await api('POST', `${mount}/config/pg`, {
    plugin_name: 'postgresql-database-plugin',
    connection_url: `postgresql://{{username}}:{{password}}@127.0.0.1:${pg.port}/postgres?sslmode=disable`,
    username: pg.adminUser,
    password: pg.adminPassword,
    allowed_roles: '*',
    verify_connection: true,
    // Every role DSO's tests create is named dso_<role>_..., so a test can count them.
    username_template: 'dso_{{.RoleName}}_{{random 12 | lowercase}}',
  });
  await api('POST', `${mount}/roles/${role}`, {
    db_name: 'pg',
    creation_statements: [`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`],
    revocation_statements: [`DROP ROLE IF EXISTS "{{name}}";`],
    default_ttl: options.defaultTtl ?? '1h',
    max_ttl: options.maxTtl ?? '24h',
  });
}
