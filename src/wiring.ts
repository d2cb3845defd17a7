// Composition root: read settings, listen on the socket at once, then wire Vault.
// The process never exits because Vault is down or a setting is wrong: Docker disables a
// plugin whose socket does not answer, and users would lose the error that explains why.
import { randomBytes } from 'node:crypto';
import { describeSettings, loadSettings, Settings } from './config/settings';
import { KvEngine } from './engines/kv';
import { LeasedEngine } from './engines/leased';
import { DockerApi } from './docker/api';
import { ownDriverNames } from './rotation/identity';
import { RotationWatcher } from './rotation/watcher';
import { DockerLiveness } from './rotation/liveness';
import { ComposeLiveness } from './rotation/compose-liveness';
import { ComposeFiles } from './rotation/files';
import type { ComposeService } from './plugin/compose-protocol';
import type { RotationReport, StatusFacts, TestVaultResult } from './plugin/contract';
import * as path from 'node:path';
import { LeaseManager, OwnerLiveness } from './vault/leases';
import { MountResolver } from './engines/mounts';
import { describeError, DsoError } from './errors';
import { createLogger, FaultLog, Logger } from './log';
import { createApp } from './plugin/app';
import type { SecretDriver } from './plugin/protocol';
import type * as http from 'node:http';
import type { RequestListener } from 'node:http';
import { MisconfiguredDriver, VaultSecretDriver } from './resolve/driver';
import { PathPolicy } from './resolve/policy';
import { Resolver } from './resolve/resolver';
import { WritePolicy } from './resolve/writes';
import { Metrics, serveMetrics } from './status/metrics';
import { StatusStore } from './status/store';
import { authMethodFor } from './vault/auth';
import { VaultClient } from './vault/client';
import { VaultSession } from './vault/session';
import { TokenManager } from './vault/token';

export { VERSION } from './version';
import { VERSION } from './version';

export interface Plugin {
  driver: SecretDriver;
  metrics: Metrics;
  rotate: (secret: string) => Promise<RotationReport>;
  describe: () => StatusFacts;
  testVault: (reference: string | undefined) => Promise<TestVaultResult>;
  /** Compose projects on plain hosts: files on a tmpfs, refreshed in place. */
  compose?: ComposeService;
  start(): void;
  stop(): void;
}

/** Builds the Vault side; problems found here (unreadable CA file...) become settings problems. */
export interface PluginDeps {
  /** Which tasks and services still exist; by default asked of the Docker Engine API. */
  liveness?: OwnerLiveness;
  reapIntervalMs?: number;
}

export function buildPlugin(settings: Settings, problems: string[], logger: Logger, deps: PluginDeps = {}): Plugin {
  const base = { version: VERSION, settings: describeSettings(settings) };
  if (problems.length === 0) {
    try {
      const vault = new VaultClient({
        addresses: settings.vaultAddresses,
        namespace: settings.namespace,
        tls: settings.tls,
        logger,
      });
      const tokens = new TokenManager({
        vault,
        method: authMethodFor(settings),
        logger,
        timeoutMs: settings.timeoutMs,
      });
      const session = new VaultSession(vault, tokens);
      const kv = new KvEngine(session);
      const docker = new DockerApi(settings.dockerSocket);
      // One reaper for swarm tasks and compose projects (owners compose:<project>/<service>).
      const composeLiveness = new ComposeLiveness(deps.liveness ?? new DockerLiveness(docker), docker);
      const leases = new LeaseManager({
        session,
        tokens: tokens.leaseTokens,
        logger,
        liveness: composeLiveness,
        reapIntervalMs: deps.reapIntervalMs,
        onEnding: () => void rotation.leaseEnding(),
        timeoutMs: settings.timeoutMs,
      });
      const driver = new VaultSecretDriver({
        resolver: new Resolver(new PathPolicy(settings.allowedPaths), settings.pathTemplate),
        mounts: new MountResolver(session),
        kv,
        leased: new LeasedEngine(session, leases, new FaultLog(logger)),
        timeoutMs: settings.timeoutMs,
        rotateDefault: settings.rotate,
        writes: new WritePolicy(settings.allowedWrites),
        logger,
      });
      let driverNames: Promise<Set<string>> | undefined;
      const rotation = new RotationWatcher({
        api: docker,
        // Where a secret points comes from the driver; KV reads straight from the engine,
        // whose answer also carries the version's creation time rotation compares.
        reader: {
          target: (request, deadline) => driver.target(request, deadline),
          readKv: (target, deadline) =>
            kv.read(target.apiPath, target.mount, { version: target.version, params: {}, deadline }),
        },
        leases,
        logger,
        intervalMs: settings.rotateIntervalMs,
        timeoutMs: settings.timeoutMs,
        rotateDefault: settings.rotate,
        // Found once; an empty answer (Engine not reachable yet) is asked again next time.
        driverNames: async () => {
          driverNames ??= ownDriverNames(docker, settings.driverName);
          const names = await driverNames;
          if (names.size === 0) driverNames = undefined;
          return names;
        },
      });
      const compose = new ComposeFiles({
        driver,
        leases,
        liveness: composeLiveness,
        docker,
        logger,
        runtimeDir: path.dirname(settings.socket),
        intervalMs: settings.rotateIntervalMs,
      });
      const metrics = new Metrics({
        vaultRequests: () => vault.attempts,
        mergedReads: () => kv.mergedReads,
        logins: () => tokens.status().logins,
        tokenRenewals: () => tokens.status().renewals,
        tokenTtlSeconds: () => tokens.status().ttlSeconds,
        leasesHeld: () => leases.held(),
        leaseRenewals: () => leases.renewals,
        leaseRevocations: () => leases.revocations,
      });
      return {
        driver,
        metrics,
        // A compose project's secret (plain hosts) is refreshed in place; otherwise services are rolled.
        rotate: async (secret) => (await compose.refreshNow(secret)) ?? (await rotation.rotateNow(secret)),
        describe: () => ({
          ...base,
          problems: [],
          vault: {
            activeAddress: vault.activeAddress,
            addresses: vault.status(),
            token: tokens.status(),
            mergedReads: kv.mergedReads,
          },
          leases: {
            held: leases.held(),
            renewals: leases.renewals,
            revocations: leases.revocations,
            list: leases.describe(),
          },
          rotation: {
            intervalMs: settings.rotateIntervalMs,
            default: settings.rotate,
            recent: rotation.history.slice(-20),
            ...rotation.health(),
          },
        }),
        testVault: (reference) => testVault(tokens, driver, leases, reference),
        compose,
        // Log in early so a bad credential shows in the log before the first secret is asked for.
        start: () => {
          void tokens.login().catch(() => undefined);
          leases.start();
          rotation.start();
          compose.start();
          // Leases live in memory only (the plugin writes no files): those of an earlier run are not renewed.
          logger.info(
            'leases of dynamic secrets issued before this start are not renewed by this process: the swarm leader ' +
              'rolls services with rotation on that hold them; docker dso inspect names the others',
          );
        },
        stop: () => {
          rotation.stop();
          compose.stop();
          leases.stop();
          tokens.stop();
          vault.close();
        },
      };
    } catch (err) {
      problems.push(err instanceof DsoError ? err.message : 'cannot set up the Vault client');
    }
  }
  logger.error('invalid settings: every GetSecret will fail until they are fixed', { problems });
  const driver = new MisconfiguredDriver(problems);
  // The routes exist whatever the settings: their answer is why nothing can be rotated or resolved.
  const refuse = () => Promise.reject(new DsoError('ERR_SETTINGS', driver.message));
  return {
    driver,
    metrics: new Metrics(),
    describe: () => ({ ...base, problems }),
    testVault: async () => ({ ok: false, stage: 'settings', code: 'ERR_SETTINGS', error: driver.message }),
    rotate: refuse,
    compose: { up: refuse, down: refuse, list: () => ({ Projects: [] }) },
    start: () => undefined,
    stop: () => undefined,
  };
}

/**
 * Logs in afresh, then reads `reference` (if given) exactly as a GetSecret would. The read
 * belongs to a task of its own that never runs, so a lease it makes (database
 * credentials...) is revoked at once rather than left alive for its whole TTL.
 */
async function testVault(
  tokens: TokenManager,
  driver: VaultSecretDriver,
  leases: LeaseManager,
  reference: string | undefined,
): Promise<TestVaultResult> {
  const { method, mount } = tokens.status();
  try {
    const { ttlSeconds, policies } = await tokens.login();
    const login = { method, mount, ttlSeconds, policies };
    if (!reference) return { ok: true, login };
    const owner = { kind: 'task' as const, id: `dso-test-vault-${randomBytes(6).toString('hex')}` };
    try {
      const result = await driver.getSecret({
        SecretName: 'dso-test-vault',
        SecretLabels: { 'dso.ref': reference },
        TaskID: owner.id,
      });
      const { source } = result;
      const read = { path: source.path, field: source.field, version: source.version, bytes: result.value.length };
      const revoked = await leases.revokeOwner(owner, 'test read');
      return { ok: true, login, read: source.leaseExpiresAt ? { ...read, leaseRevoked: revoked } : read };
    } catch (err) {
      await leases.revokeOwner(owner, 'test read');
      const { code, message, subcode } = describeError(err);
      return { ok: false, stage: 'read', login, code, subcode, error: message };
    }
  } catch (err) {
    const { code, message, subcode } = describeError(err);
    return { ok: false, stage: 'login', code, subcode, error: message, login: { method, mount } };
  }
}

/**
 * Everything but the socket: settings, logger, Vault, the Express app. Called by main.ts
 * once the socket listens; returns the handler for its requests.
 */
export function startPlugin(server: http.Server, socket: string): RequestListener {
  const { settings, problems } = loadSettings(process.env);
  const logger = createLogger(settings.logLevel);
  process.on('unhandledRejection', (reason) =>
    logger.error('unhandled promise rejection', { error: String((reason as Error)?.stack ?? reason) }),
  );
  process.on('uncaughtException', (err) => logger.error('uncaught exception', { error: String(err?.stack ?? err) }));

  const plugin = buildPlugin(settings, problems, logger);
  const status = new StatusStore();
  const app = createApp({
    driver: plugin.driver,
    logger,
    status,
    timeoutMs: settings.timeoutMs,
    describe: plugin.describe,
    testVault: plugin.testVault,
    rotate: plugin.rotate,
    compose: plugin.compose,
    observe: (outcome, code, seconds) => plugin.metrics.observeGetSecret(outcome, code, seconds),
  });
  logger.info('DSO plugin listening', { socket, version: VERSION, ...describeSettings(settings) });
  plugin.start();
  if (settings.metricsAddress) {
    // A metrics port that cannot be opened is logged, never fatal: secrets matter more.
    serveMetrics(plugin.metrics, settings.metricsAddress, logger).catch((err: NodeJS.ErrnoException) =>
      logger.error('cannot serve metrics', { address: settings.metricsAddress, error: err.code ?? err.message }),
    );
  }

  const shutdown = (signal: string) => {
    logger.info('DSO plugin stopping', { signal });
    plugin.stop();
    server.close();
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 100).unref();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  return app;
}
