// The plugin's settings as users write them (env, `docker plugin set`, /etc/dso/dso.json).
// One table gives each setting's name, its check and what it means; the ajv schema and the
// RawSettings type are derived from it, so they cannot drift apart.

const URL_LIST = '^\\s*https?://[^\\s,]+(\\s*,\\s*https?://[^\\s,]+)*\\s*$';
const DURATION = '^\\s*\\d+(\\.\\d+)?\\s*(ms|s|m|h)?\\s*$';
const BOOLEAN = '^(true|false)$';
const ABSOLUTE_FILE = '^/[^\\0]*$';
// `pattern?name,name` entries separated by ";" (commas separate the parameter names).
const WRITE_ENTRY = '[^\\s;?]+\\?[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*';
const WRITE_LIST = `^\\s*${WRITE_ENTRY}(\\s*;\\s*${WRITE_ENTRY})*\\s*;?\\s*$`;

interface SettingSpec {
  pattern?: string;
  enum?: readonly string[];
  hint: string;
}

export const SETTINGS = {
  VAULT_ADDR: { pattern: URL_LIST, hint: 'one or more comma-separated http(s):// addresses' },
  VAULT_NAMESPACE: { pattern: '^[^\\s]+$', hint: 'a namespace path' },
  VAULT_AUTH_METHOD: { enum: ['token', 'approle', 'jwt', 'cert'], hint: 'one of token, approle, jwt, cert' },
  VAULT_AUTH_MOUNT: { pattern: '^[A-Za-z0-9_.\\-/]+$', hint: 'the auth mount path, e.g. approle' },
  VAULT_TOKEN_FILE: { pattern: ABSOLUTE_FILE, hint: 'an absolute file path' },
  VAULT_ROLE_ID: { pattern: '^\\S+$', hint: 'an AppRole role id' },
  VAULT_ROLE_ID_FILE: { pattern: ABSOLUTE_FILE, hint: 'an absolute file path' },
  VAULT_SECRET_ID_FILE: { pattern: ABSOLUTE_FILE, hint: 'an absolute file path' },
  VAULT_SECRET_ID_WRAPPED: { pattern: BOOLEAN, hint: 'true or false' },
  VAULT_JWT_FILE: { pattern: ABSOLUTE_FILE, hint: 'an absolute file path' },
  VAULT_JWT_ROLE: { pattern: '^\\S+$', hint: 'a role name' },
  VAULT_CERT_ROLE: { pattern: '^\\S+$', hint: 'a role name' },
  VAULT_CACERT: { pattern: ABSOLUTE_FILE, hint: 'an absolute file path' },
  VAULT_CLIENT_CERT: { pattern: ABSOLUTE_FILE, hint: 'an absolute file path' },
  VAULT_CLIENT_KEY: { pattern: ABSOLUTE_FILE, hint: 'an absolute file path' },
  VAULT_TLS_SERVER_NAME: { pattern: '^[A-Za-z0-9.\\-]+$', hint: 'a host name' },
  VAULT_SKIP_VERIFY: { pattern: '^.*$', hint: 'only the exact value true skips TLS verification' },
  DSO_TIMEOUT: { pattern: DURATION, hint: 'a duration under 30s, e.g. 10s or 2500ms' },
  DSO_PATH_TEMPLATE: { pattern: '^\\S+$', hint: 'a path template, e.g. secret/data/{stack}/{secret}' },
  DSO_ALLOWED_PATHS: { pattern: '^\\s*\\S+(\\s*,\\s*\\S+)*\\s*$', hint: 'comma-separated path patterns' },
  DSO_ALLOWED_WRITES: {
    pattern: WRITE_LIST,
    hint: 'PATTERN?param[,param...] entries separated by ";", e.g. transit/encrypt/app?plaintext,context',
  },
  DSO_ROTATE: { pattern: BOOLEAN, hint: 'true or false' },
  DSO_ROTATE_INTERVAL: { pattern: DURATION, hint: 'a duration, e.g. 30s' },
  DSO_LOG_LEVEL: { enum: ['error', 'warn', 'info', 'debug'], hint: 'one of error, warn, info, debug' },
  DSO_METRICS_ADDR: { pattern: '^\\S+:\\d+$', hint: 'host:port' },
  DSO_SOCKET: { pattern: ABSOLUTE_FILE, hint: 'an absolute socket path' },
  DSO_DOCKER_SOCKET: { pattern: ABSOLUTE_FILE, hint: 'an absolute socket path' },
  DSO_DRIVER_NAME: { pattern: '^[a-z0-9][a-z0-9._/:-]*$', hint: "the plugin's name as secrets' driver, e.g. dso" },
} as const satisfies Record<string, SettingSpec>;

export type SettingName = keyof typeof SETTINGS;
export type RawSettings = Partial<Record<SettingName, string>>;
export const SETTING_NAMES = Object.keys(SETTINGS) as SettingName[];

export const rawSettingsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: Object.fromEntries(
    SETTING_NAMES.map((name) => {
      const spec: SettingSpec = SETTINGS[name];
      return [name, spec.enum ? { type: 'string', enum: spec.enum } : { type: 'string', pattern: spec.pattern }];
    }),
  ),
} as const;
