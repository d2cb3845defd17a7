// The replies of the plugin's own routes that `docker dso` reads (GET /DSO.Status, POST
// /DSO.TestVault, POST /DSO.Rotate, and the error body of every DSO.* route): the types
// the plugin builds them with and the ajv schemas the CLI checks them against, in one
// place, as compose-protocol.ts does for the compose routes. Both halves ship together,
// so a reply that does not match is a defect to report, never an "older plugin" to guess
// around. The schemas check the structure the CLI relies on, not every field.
import Ajv, { ValidateFunction } from 'ajv';
import type { SettingsSummary } from '../config/settings';
import type { ErrorSubcode, Failure } from '../errors';
import type { RotationHealth, RotationReport } from '../rotation/watcher';
import type { FetchRecord } from '../status/store';
import type { VaultAddressStatus } from '../vault/client';
import type { LeaseSummary } from '../vault/leases';
import type { TokenStatus } from '../vault/token';

export type { ErrorSubcode, FetchRecord, LeaseSummary, RotationReport, SettingsSummary, TokenStatus };

/** What the plugin says about itself; `vault`, `leases` and `rotation` are absent while its settings are invalid. */
export interface StatusFacts {
  version: string;
  settings: SettingsSummary;
  problems: string[];
  vault?: { activeAddress?: string; addresses: VaultAddressStatus[]; token: TokenStatus; mergedReads: number };
  leases?: { held: number; renewals: number; revocations: number; list: LeaseSummary[] };
  rotation?: { intervalMs: number; default: boolean; recent: RotationReport[] } & RotationHealth;
}

/** GET /DSO.Status: the facts plus the last outcome of each secret and a short history. */
export interface PluginStatus extends StatusFacts {
  secrets: FetchRecord[];
  recent: FetchRecord[];
}

/** POST /DSO.TestVault: a login and, with a Reference, a read through the GetSecret path. */
export interface TestVaultResult extends Failure {
  ok: boolean;
  stage?: 'settings' | 'login' | 'read';
  /** The method and mount tried; TTL and policies once the login succeeded. */
  login?: { method: string; mount: string; ttlSeconds?: number; policies?: string[] };
  read?: { path?: string; field?: string; version?: number; bytes: number; leaseRevoked?: boolean };
}

/** The body of a refusal on any DSO.* route. */
export interface RouteError {
  Err: string;
  code?: string;
  subcode?: ErrorSubcode;
}

const strings = { type: 'array', items: { type: 'string' } } as const;
const record = {
  type: 'object',
  required: ['secret', 'outcome'],
  properties: { secret: { type: 'string' }, outcome: { enum: ['ok', 'error'] }, code: { type: 'string' } },
} as const;
const roll = {
  type: 'object',
  required: ['service', 'outcome'],
  properties: { service: { type: 'string' }, outcome: { type: 'string' }, error: { type: 'string' } },
} as const;

const statusSchema = {
  type: 'object',
  required: ['version', 'settings', 'problems', 'secrets', 'recent'],
  properties: {
    version: { type: 'string' },
    settings: {
      type: 'object',
      required: ['vaultAddresses', 'authMethod', 'authMount'],
      properties: {
        vaultAddresses: strings,
        authMethod: { type: 'string' },
        allowedPaths: strings,
        allowedWrites: strings,
      },
    },
    problems: strings,
    vault: {
      type: 'object',
      required: ['addresses', 'token'],
      properties: {
        addresses: { type: 'array', items: { type: 'object', required: ['address', 'state'] } },
        token: { type: 'object', required: ['loggedIn'], properties: { loggedIn: { type: 'boolean' } } },
      },
    },
    leases: { type: 'object', required: ['held'], properties: { held: { type: 'integer' } } },
    rotation: {
      type: 'object',
      required: ['recent', 'driverNames', 'unmanagedLeases'],
      properties: { recent: { type: 'array' }, driverNames: strings, unmanagedLeases: { type: 'array' } },
    },
    secrets: { type: 'array', items: record },
    recent: { type: 'array', items: record },
  },
} as const;

const testVaultSchema = {
  type: 'object',
  required: ['ok'],
  properties: {
    ok: { type: 'boolean' },
    stage: { enum: ['settings', 'login', 'read'] },
    code: { type: 'string' },
    subcode: { type: 'string' },
    error: { type: 'string' },
    login: { type: 'object', required: ['method', 'mount'], properties: { policies: strings } },
    read: { type: 'object', required: ['bytes'], properties: { bytes: { type: 'integer' } } },
  },
} as const;

const rotationSchema = {
  type: 'object',
  required: ['secret', 'reason', 'services'],
  properties: { secret: { type: 'string' }, reason: { type: 'string' }, services: { type: 'array', items: roll } },
} as const;

const routeErrorSchema = {
  type: 'object',
  required: ['Err'],
  properties: { Err: { type: 'string' }, code: { type: 'string' }, subcode: { type: 'string' } },
} as const;

const ajv = new Ajv({ allErrors: true });
const validators = {
  'GET /DSO.Status': ajv.compile<PluginStatus>(statusSchema),
  'POST /DSO.TestVault': ajv.compile<TestVaultResult>(testVaultSchema),
  'POST /DSO.Rotate': ajv.compile<RotationReport>(rotationSchema),
  error: ajv.compile<RouteError>(routeErrorSchema),
};

type Reply<K extends keyof typeof validators> = (typeof validators)[K] extends ValidateFunction<infer T> ? T : never;

/** The reply as its type, or the first few ways it does not match the contract. */
export function checkReply<K extends keyof typeof validators>(
  route: K,
  body: unknown,
): { reply?: Reply<K>; problem?: string } {
  const validate: ValidateFunction = validators[route];
  if (validate(body)) return { reply: body as Reply<K> };
  const problems = (validate.errors ?? []).slice(0, 3);
  return { problem: problems.map((e) => `${e.instancePath || '(the reply)'} ${e.message ?? 'is invalid'}`).join('; ') };
}
