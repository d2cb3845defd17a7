// Docker's secret-provider protocol (docker.secretprovider/1.0): the request Docker sends,
// the reply it expects, and the one interface a driver implements. Nothing here knows Vault.
import Ajv, { JSONSchemaType } from 'ajv';

type StringMap = Record<string, string>;

export interface GetSecretRequest {
  SecretName?: string;
  SecretLabels?: StringMap | null;
  ServiceID?: string;
  ServiceName?: string;
  ServiceLabels?: StringMap | null;
  ServiceHostname?: string;
  TaskID?: string;
  TaskName?: string;
  TaskImage?: string;
  NodeID?: string;
  ServiceEndpointSpec?: Record<string, unknown> | null;
}

export interface GetSecretReply {
  Value?: string;
  Err: string;
  DoNotReuse: boolean;
}

/** What a driver returns; `source` says what was read, for logs and status (never the value). */
export interface SecretResult {
  value: Buffer;
  doNotReuse: boolean;
  source: SecretSource;
}

export interface SecretSource {
  path?: string;
  field?: string;
  version?: number;
  leaseExpiresAt?: string;
}

/** What a driver asks of its request's deadline: whether it has passed (an AbortSignal is one). */
export interface DeadlineSignal {
  readonly aborted: boolean;
  throwIfAborted(): void;
}

export interface SecretDriver {
  getSecret(request: GetSecretRequest, signal: DeadlineSignal): Promise<SecretResult>;
}

// Go encodes a nil map as null, so every map may arrive as null.
const stringMap = {
  type: 'object',
  nullable: true,
  additionalProperties: { type: 'string' },
  required: [],
} as const;

const optionalString = { type: 'string', nullable: true } as const;

export const getSecretRequestSchema: JSONSchemaType<GetSecretRequest> = {
  type: 'object',
  additionalProperties: true,
  properties: {
    SecretName: optionalString,
    SecretLabels: stringMap,
    ServiceID: optionalString,
    ServiceName: optionalString,
    ServiceLabels: stringMap,
    ServiceHostname: optionalString,
    TaskID: optionalString,
    TaskName: optionalString,
    TaskImage: optionalString,
    NodeID: optionalString,
    ServiceEndpointSpec: { type: 'object', nullable: true, required: [] },
  },
  required: [],
} as unknown as JSONSchemaType<GetSecretRequest>;

const ajv = new Ajv({ allErrors: true });

/** A check of request bodies against `schema`: the request, or a message naming up to five fields that are off. */
export function requestChecker<T>(
  schema: JSONSchemaType<T>,
  what: string,
): (body: unknown) => { request?: T; problem?: string } {
  const validate = ajv.compile(schema);
  return (body) => {
    if (validate(body)) return { request: body };
    const problems = (validate.errors ?? [])
      .slice(0, 5)
      .map((e) => `${e.instancePath.replace(/^\//, '') || 'body'} ${e.message ?? 'is invalid'}`);
    return { problem: `malformed ${what}: ${problems.join('; ')}` };
  };
}

export const checkGetSecretRequest = requestChecker(getSecretRequestSchema, 'GetSecret request');

export function valueReply(result: SecretResult): GetSecretReply {
  return { Value: result.value.toString('base64'), Err: '', DoNotReuse: result.doNotReuse };
}

export function errorReply(message: string): GetSecretReply {
  return { Err: message, DoNotReuse: false };
}
