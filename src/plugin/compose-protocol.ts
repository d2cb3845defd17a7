// The plugin's routes for compose projects on plain Docker hosts (no swarm, so Docker never
// calls a secrets driver): `docker dso up` asks the plugin, over its root-only socket, to
// resolve a project's references and write each value to a file on a tmpfs; `docker dso
// down` asks it to remove them. Request and reply shapes and their ajv schemas live here
// once, imported by the plugin's routes and by the CLI. No reply ever carries a value.
import type { JSONSchemaType } from 'ajv';
import type { Failure } from '../errors';
import { requestChecker, SecretSource } from './protocol';

/** Compose's own project name rule (lowercase letters, digits, "_" and "-"). */
export const PROJECT_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** A file name for one secret (the compose `secrets:` key). */
export const SECRET_KEY = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** How a file follows a change in Vault: rewritten in place, rewritten and the containers restarted, or never. */
export type RefreshMode = 'in-place' | 'restart' | 'off';

export interface ComposeSecretSpec {
  /** The compose `secrets:` key; also the file name. */
  Name: string;
  /** The compose service that mounts it (leases are per project and service). */
  Service: string;
  /** dso.* labels: dso.ref, dso.format, ..., and dso.rotate (true, false or restart). */
  Labels: Record<string, string>;
  /** Owner of the file: the `user:` the service runs as, when the compose file names it numerically. */
  Uid?: number;
  Gid?: number;
}

export interface ComposeUpRequest {
  Project: string;
  Secrets: ComposeSecretSpec[];
}

export interface ComposeFileReport {
  Name: string;
  Service: string;
  /** Where the file is, relative to the plugin's runtime directory (the socket's directory). */
  File: string;
  Refresh: RefreshMode;
  /** The secret's dso.ref (or dso.path#dso.field) as given. */
  Reference?: string;
  Path?: string;
  Field?: string;
  Version?: number;
  LeaseExpiresAt?: string;
  /** Last time the refresher wrote the file (ISO), and its last problem (never a value). */
  WrittenAt?: string;
  Error?: string;
}

/** A secret's reference as its labels give it: dso.ref, or dso.path with dso.field; null with neither. */
export function referenceOf(labels: Record<string, string>): string | null {
  if (labels['dso.ref']) return labels['dso.ref'];
  if (labels['dso.path']) return `dso://${labels['dso.path']}${labels['dso.field'] ? `#${labels['dso.field']}` : ''}`;
  return null;
}

export interface ComposeUpReply {
  Project: string;
  Files: ComposeFileReport[];
}

export interface ComposeDownRequest {
  Project: string;
}

export interface ComposeDownReply {
  Project: string;
  Removed: number;
}

export interface ComposeListReply {
  Projects: Array<{ Project: string; Files: ComposeFileReport[] }>;
}

/** A per-secret outcome of ComposeUp, for the plugin's status records. */
export interface ComposeFetch extends Failure {
  spec: ComposeSecretSpec;
  ok: boolean;
  doNotReuse?: boolean;
  source: SecretSource;
}

/** What the plugin does for compose projects; the HTTP layer knows only this. */
export interface ComposeService {
  /** Resolves and writes every file, or throws (nothing of the project's request is left then). */
  up(request: ComposeUpRequest, record: (fetch: ComposeFetch) => void): Promise<ComposeUpReply>;
  down(project: string): Promise<ComposeDownReply>;
  list(project?: string): ComposeListReply;
}

const labels = { type: 'object', additionalProperties: { type: 'string' }, required: [] } as const;

const upSchema: JSONSchemaType<ComposeUpRequest> = {
  type: 'object',
  additionalProperties: false,
  properties: {
    Project: { type: 'string', pattern: PROJECT_NAME.source },
    Secrets: {
      type: 'array',
      maxItems: 500,
      items: {
        type: 'object',
        additionalProperties: false,
        properties: {
          Name: { type: 'string', pattern: SECRET_KEY.source },
          Service: { type: 'string', pattern: SECRET_KEY.source },
          Labels: labels,
          Uid: { type: 'integer', minimum: 0, maximum: 4294967294, nullable: true },
          Gid: { type: 'integer', minimum: 0, maximum: 4294967294, nullable: true },
        },
        required: ['Name', 'Service', 'Labels'],
      },
    },
  },
  required: ['Project', 'Secrets'],
} as unknown as JSONSchemaType<ComposeUpRequest>;

const downSchema: JSONSchemaType<ComposeDownRequest> = {
  type: 'object',
  additionalProperties: false,
  properties: { Project: { type: 'string', pattern: PROJECT_NAME.source } },
  required: ['Project'],
};

export const checkComposeUp = requestChecker(upSchema, 'compose request');
export const checkComposeDown = requestChecker(downSchema, 'compose request');
