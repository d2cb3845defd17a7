// `docker dso init`: writes the credential files (0600) into the plugin's /etc/dso source
// directory, disables the plugin, sets its (non-secret) settings, enables it, and checks
// the Vault login through the plugin. Creates the plugin when it is absent.
import { shortName } from '../../docker/objects';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadSettings, vaultAddresses } from '../../config/settings';
import { SETTING_NAMES, SETTINGS, SettingName } from '../../config/schema';
import type { CommandSpec, OptionSpec, Parsed } from '../args';
import {
  CLI_META_FILE,
  Context,
  DEFAULT_CONFIG_DIR,
  hostPathOf,
  PLUGIN_OPTION,
  pluginName,
  readCliMeta,
  waitForPlugin,
} from '../context';
import { CredentialSource, readCredentials, readGivenFile, writePrivateFile } from '../credentials';
import { oneLine } from '../docker';
import { CliError, EXIT, UsageError } from '../errors';
import { describeTestResult } from './test-vault';

const MODES = ['cloud'];
const PROVIDERS = ['vault', 'openbao'];

/**
 * Every flag that becomes a plugin setting, in the order --help lists them: `value` sets the
 * setting to the flag's value; `credential` writes the value ("-", @FILE or literal) to a
 * file of the config dir; `pem` copies a PEM file there; the setting then names the file
 * as the plugin sees it. `secret` credentials warn when given on the command line.
 */
interface SettingFlag extends OptionSpec {
  setting?: SettingName;
  kind?: 'value' | 'credential' | 'pem';
  file?: string;
  mode?: number;
  secret?: boolean;
  what?: string;
}

/** The flag of a setting: VAULT_AUTH_MOUNT -> vault-auth-mount, VAULT_TOKEN_FILE -> vault-token. */
const flagName = (setting: SettingName) => setting.toLowerCase().replace(/_file$|_/g, (m) => (m === '_' ? '-' : ''));

function flag(setting: SettingName, kind: SettingFlag['kind'], valueName: string, description: string, more = {}) {
  const text = `${description} (${setting})`;
  return { name: flagName(setting), setting, kind, type: 'string', valueName, description: text, ...more } as const;
}

/** Written to <config-dir>/<the flag's name without vault->, mode 0600 (said in the help of `secret` ones). */
function credential(setting: SettingName, what: string, valueName: string, description: string, secret = false) {
  const file = flagName(setting).replace(/^vault-/, '');
  const written = `${description}; written to <config-dir>/${file}${secret ? ', mode 0600' : ''}`;
  return flag(setting, 'credential', secret ? `${valueName}|-|@FILE` : valueName, written, { file, what, secret });
}

function pem(setting: SettingName, file: string, what: string, mode = 0o644, of = '') {
  const copied = `${what} (PEM)${of}, copied to <config-dir>/${file}${mode === 0o600 ? ', mode 0600' : ''}`;
  return flag(setting, 'pem', 'FILE', copied, { file, mode, what });
}

const SETTING_FLAGS: SettingFlag[] = [
  {
    name: 'vault-address',
    type: 'string',
    multiple: true,
    valueName: 'URL',
    description: 'Vault/OpenBao address; repeat it or give a comma-separated list for failover (VAULT_ADDR)',
  },
  flag('VAULT_AUTH_METHOD', 'value', 'METHOD', 'how the plugin logs in', { choices: SETTINGS.VAULT_AUTH_METHOD.enum }),
  flag('VAULT_AUTH_MOUNT', 'value', 'PATH', "mount path of the auth method, default the method's name"),
  credential('VAULT_ROLE_ID_FILE', 'AppRole role id', 'ID', 'AppRole role id, or "-" / @FILE'),
  credential('VAULT_SECRET_ID_FILE', 'AppRole secret id', 'ID', 'AppRole secret id; "-" reads standard input', true),
  {
    name: 'vault-secret-id-wrapped',
    type: 'boolean',
    description: 'the secret id is a response-wrapping token to unwrap (VAULT_SECRET_ID_WRAPPED=true)',
  },
  credential('VAULT_TOKEN_FILE', 'Vault token', 'TOKEN', 'token for the token method', true),
  credential('VAULT_JWT_FILE', 'JWT', 'JWT', 'JWT for the jwt method', true),
  flag('VAULT_JWT_ROLE', 'value', 'ROLE', 'role for the jwt method'),
  flag('VAULT_CERT_ROLE', 'value', 'ROLE', 'role for the cert method'),
  pem('VAULT_CLIENT_CERT', 'client.pem', 'client certificate'),
  pem('VAULT_CLIENT_KEY', 'client-key.pem', 'client key', 0o600),
  pem('VAULT_CACERT', 'ca.pem', 'CA certificate', 0o644, " of Vault's TLS certificate"),
  flag('VAULT_TLS_SERVER_NAME', 'value', 'NAME', 'TLS server name to verify'),
  flag('VAULT_NAMESPACE', 'value', 'NS', 'Vault Enterprise / OpenBao namespace'),
];

/** The flags that write a file of the config dir, by the setting that names it. */
const FILE_FLAGS = SETTING_FLAGS.filter((f) => f.kind === 'credential' || f.kind === 'pem');

export const spec: CommandSpec = {
  path: ['init'],
  summary: 'Configure the DSO plugin for Vault/OpenBao and (re)enable it; create the plugin when it is absent',
  description: [
    'Credentials (secret id, token, JWT) are written to files of mode 0600 in the directory the plugin',
    'mounts read-only at /etc/dso (--config-dir) and never passed to `docker plugin set` or to any',
    'command line. Give them as "-" to read standard input or as @FILE; a literal value works but is',
    'visible to `ps` and in your shell history. Then the plugin is disabled, its settings are set, it is',
    'enabled again, and a Vault login is tried through it. Settings not named keep their current value.',
  ].join('\n'),
  options: [
    ...SETTING_FLAGS,
    {
      name: 'set',
      type: 'string',
      multiple: true,
      valueName: 'NAME=VALUE',
      description: 'any other plugin setting, e.g. DSO_ALLOWED_PATHS=secret/data/app/* or DSO_LOG_LEVEL=debug',
    },
    {
      name: 'mode',
      type: 'string',
      valueName: 'MODE',
      description: 'cloud: secrets come from an external Vault/OpenBao (the only mode)',
    },
    {
      name: 'provider',
      type: 'string',
      valueName: 'NAME',
      description: 'vault or openbao (same API; recorded for system info)',
    },
    {
      name: 'config-dir',
      type: 'string',
      valueName: 'DIR',
      description:
        `host directory mounted at /etc/dso in the plugin (default: the plugin's current one, ` +
        `else ${DEFAULT_CONFIG_DIR})`,
    },
    PLUGIN_OPTION,
    {
      name: 'plugin-image',
      type: 'string',
      valueName: 'REF',
      description:
        'when the plugin is absent: install it from this plugin image (docker plugin install ' +
        '--alias <plugin> REF) instead of building it from this repository; the privileges it ' +
        'asks for are shown and must be granted with --grant-all-permissions',
    },
    {
      name: 'grant-all-permissions',
      type: 'boolean',
      description:
        'grant the privileges the --plugin-image asks for (network, mounts...), as docker ' +
        'plugin install --grant-all-permissions does',
    },
    { name: 'no-test', type: 'boolean', description: 'do not try a Vault login through the plugin afterwards' },
  ],
  args: [],
  examples: [
    'docker dso init --mode cloud --provider vault --vault-address https://vault:8200 \\',
    '    --vault-auth-method approle --vault-role-id 3c9e... --vault-secret-id - < secret-id.txt',
    'docker dso init --vault-address https://v1:8200,https://v2:8200 --vault-auth-method ' +
      'token --vault-token @/root/dso-token',
    'docker dso init --vault-secret-id -          # only hand over a fresh secret id',
  ],
};

interface Plan {
  settings: Record<string, string>;
  /** Files to write into the config dir: name -> content and mode. */
  files: { name: string; content: string | Buffer; mode: number; what: string }[];
  mode?: string;
  provider?: string;
  warnings: string[];
}

/** Turns flags into settings and files; no side effects besides reading the given files. */
export async function planInit(ctx: Context, parsed: Parsed): Promise<Plan> {
  const o = parsed.options;
  const str = (name: string) => o[name] as string | undefined;
  const settings: Record<string, string> = {};
  const files: Plan['files'] = [];
  const warnings: string[] = [];

  const mode = str('mode');
  if (mode !== undefined && !MODES.includes(mode)) {
    throw new UsageError(
      `--mode ${mode} is not supported: DSO serves secrets from an external Vault or OpenBao, which is mode "cloud"`,
      'use --mode cloud (or leave it out)',
    );
  }
  const provider = str('provider');
  if (provider !== undefined && !PROVIDERS.includes(provider)) {
    throw new UsageError(
      `--provider ${provider} is not supported: DSO speaks the Vault API, served by HashiCorp Vault and OpenBao`,
      'use --provider vault or --provider openbao',
    );
  }

  if (o['vault-address'] !== undefined) {
    const addresses = vaultAddresses((o['vault-address'] as string[]).join(','));
    if (addresses.length === 0) throw new UsageError('--vault-address is empty');
    for (const a of addresses) {
      if (!/^https?:\/\/[^\s,/]+(\/\S*)?$/.test(a))
        throw new UsageError(`--vault-address ${a} is not an http(s):// address, e.g. https://vault.example:8200`);
    }
    settings.VAULT_ADDR = addresses.join(',');
  }

  for (const f of SETTING_FLAGS)
    if (f.kind === 'value' && str(f.name) !== undefined) settings[f.setting!] = str(f.name)!;
  if (o['vault-secret-id-wrapped'] !== undefined)
    settings.VAULT_SECRET_ID_WRAPPED = o['vault-secret-id-wrapped'] ? 'true' : 'false';

  for (const pair of (o.set as string[] | undefined) ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--set ${pair}: expected NAME=VALUE`);
    const name = pair.slice(0, eq);
    if (!(SETTING_NAMES as string[]).includes(name))
      throw new UsageError(`--set ${name}: unknown setting; known: ${SETTING_NAMES.join(', ')}`);
    if (name === 'DSO_SOCKET' || name === 'DSO_DOCKER_SOCKET')
      throw new UsageError(`--set ${name}: fixed inside the managed plugin`);
    settings[name] = pair.slice(eq + 1);
  }

  // Credentials: to files only.
  const given = FILE_FLAGS.filter((f) => str(f.name) !== undefined);
  const sources: CredentialSource[] = given
    .filter((f) => f.kind === 'credential')
    .map((f) => ({ flag: `--${f.name}`, spec: str(f.name)! }));
  const credentials = await readCredentials(sources, ctx.io);
  for (const f of given) {
    const flag = `--${f.name}`;
    let content: string | Buffer;
    if (f.kind === 'credential') {
      const c = credentials.get(flag)!;
      if (f.secret && c.from === 'argument') {
        warnings.push(
          `${flag} was given on the command line, where ps and the shell history show it; next ` +
            `time use "${flag} -" (standard input) or ${flag} @FILE`,
        );
      }
      content = `${c.value}\n`;
    } else {
      const file = path.resolve(ctx.io.cwd, str(f.name)!.replace(/^@/, ''));
      content = readGivenFile(flag, file);
      if (!content.toString('latin1').includes('-----BEGIN '))
        throw new UsageError(`${flag}: ${file} is not a PEM file`);
    }
    files.push({ name: f.file!, content, mode: f.mode ?? 0o600, what: f.what! });
    settings[f.setting!] = `${DEFAULT_CONFIG_DIR}/${f.file}`; // where the plugin sees the file
  }
  if (credentials.has('--vault-role-id')) settings.VAULT_ROLE_ID = ''; // the file replaces any inline role id

  // Each value must pass the plugin's own check of that setting.
  for (const [name, value] of Object.entries(settings)) {
    if (value === '') continue;
    const rule = SETTINGS[name as SettingName] as { pattern?: string; enum?: readonly string[]; hint: string };
    const ok = rule.enum ? rule.enum.includes(value) : new RegExp(rule.pattern!).test(value);
    if (!ok) throw new UsageError(`${name}=${value} is invalid: it must be ${rule.hint}`);
  }
  return { settings, files, mode, provider, warnings };
}

/** Settings after the change, checked with the plugin's own loader (before anything is changed). */
function checkFinal(current: Record<string, string>, plan: Plan, configDir: string, settable: string[]): string[] {
  const env: NodeJS.ProcessEnv = {};
  for (const name of SETTING_NAMES) {
    const v = name in plan.settings ? plan.settings[name] : current[name];
    if (v !== undefined && v !== '') env[name] = v;
  }
  const problems = loadSettings(env, path.join(configDir, 'dso.json')).problems;
  // Files the settings name must exist in the directory (or be about to be written).
  const writing = new Set(plan.files.map((f) => f.name));
  for (const f of FILE_FLAGS) {
    const v = env[f.setting!];
    const file = hostPathOf(v, configDir);
    if (file && file !== configDir && !writing.has(path.relative(configDir, file)) && !fs.existsSync(file))
      problems.push(`${f.setting}=${v} but ${file} does not exist: give --${f.name}`);
  }
  if (settable.length) {
    for (const name of Object.keys(plan.settings)) {
      if (!settable.includes(name))
        problems.push(`the plugin does not let ${name} be set (not settable in its config.json)`);
    }
  }
  return problems;
}

/** One privilege a plugin image asks for, as docker prints it: ` - mount: [/var/run/docker.sock]`. */
const PRIVILEGE_LINE = /^\s*-\s+([^:\n]+):\s+(.*?)\s*$/;

/**
 * Installs the plugin from an image the way `docker plugin install` does: the privileges
 * the image asks for are shown, and installed only when the user granted them
 * (--grant-all-permissions). They are learned from docker itself, by an install whose
 * question "Do you grant the above permissions?" is answered "n": nothing is installed.
 */
async function installFromImage(ctx: Context, name: string, image: string, grant: boolean): Promise<void> {
  const probe = await ctx.docker.run(['plugin', 'install', '--disable', '--alias', name, image], {
    input: 'n\n',
    timeoutMs: 600_000,
  });
  if (probe.code === 0) {
    // Docker asks nothing when the image needs no privileges: that was the install.
    ctx.io.out(`Installed plugin ${name} from ${image} (it asks for no privileges; disabled until configured)\n`);
    return;
  }
  const privileges = probe.stdout
    .split('\n')
    .map((line) => PRIVILEGE_LINE.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => `${m[1]}: ${m[2]}`);
  if (privileges.length === 0) {
    throw new CliError(
      EXIT.FAILURE,
      `docker plugin install ${image} failed: ${oneLine(probe.stderr || probe.stdout)}`,
      'check the image reference and that this Docker engine can pull from its registry',
    );
  }
  const listed = privileges.map((p) => `  - ${p}`).join('\n');
  if (!grant) {
    throw new CliError(
      EXIT.USAGE,
      `the plugin image ${image} asks for these privileges:\n${listed}\nnothing was installed`,
      'review them; to grant them, run the same command again with --grant-all-permissions',
    );
  }
  ctx.io.out(
    `Installing plugin ${name} from ${image} (disabled until configured), granting the ` +
      `privileges it asks for (--grant-all-permissions):\n${listed}\n`,
  );
  await ctx.docker.ok(['plugin', 'install', '--grant-all-permissions', '--disable', '--alias', name, image], {
    timeoutMs: 600_000,
  });
}

async function createPlugin(ctx: Context, name: string, image: string | undefined, grant: boolean): Promise<void> {
  if (image) {
    await installFromImage(ctx, name, image, grant);
    return;
  }
  if (!ctx.buildScript) {
    throw new CliError(
      EXIT.PLUGIN,
      `the DSO plugin ${name} is not installed, and this docker-dso does not run from a DSO repository to build it`,
      [
        `install it first, then run init again:`,
        `  docker plugin install --grant-all-permissions --disable --alias ${name} <registry>/dso/vault`,
        `or give the image: docker dso init --plugin ${name} --plugin-image ` +
          `<registry>/dso/vault --grant-all-permissions ...`,
        `or, in a DSO checkout: bash plugin/build.sh --name ${name} --no-enable`,
      ].join('\n'),
    );
  }
  ctx.io.out(`Plugin ${name} is absent: building and creating it with ${ctx.buildScript} (takes a minute)...\n`);
  const res = await ctx.runner('bash', [ctx.buildScript, '--name', name, '--fresh', '--no-enable'], {
    timeoutMs: 900_000,
    onStderr: (c) => ctx.io.err(c),
  });
  if (res.code !== 0)
    throw new CliError(
      EXIT.FAILURE,
      `creating the plugin ${name} failed (plugin/build.sh exit ${res.code}); see its output above`,
    );
}

async function disable(ctx: Context, name: string): Promise<void> {
  if (await ctx.docker.disablePlugin(name)) return;
  // Secrets that name the driver keep it "in use"; running tasks already hold their values.
  ctx.io.out(
    `Plugin ${name} is in use by secrets; disabling it anyway (running tasks keep their ` +
      `secrets; new tasks wait for it)\n`,
  );
  await ctx.docker.disablePlugin(name, true);
}

/** A failure of `step` with `fix` as its fix (what state it leaves and what to do). */
const withFix = (step: Promise<void>, fix: string) =>
  step.catch((err: unknown) => {
    throw err instanceof CliError ? new CliError(err.exitCode, err.message, fix) : err;
  });

export async function run(ctx: Context, parsed: Parsed): Promise<number> {
  const name = pluginName(ctx, parsed);
  const plan = await planInit(ctx, parsed);
  for (const w of plan.warnings) ctx.io.err(`WARNING: ${w}\n`);

  let plugin = await ctx.docker.plugin(name);
  const configDir = path.resolve(
    ctx.io.cwd,
    (parsed.options['config-dir'] as string | undefined) ?? plugin?.etcDsoSource ?? DEFAULT_CONFIG_DIR,
  );
  if (!plugin && !('VAULT_ADDR' in plan.settings)) {
    throw new UsageError(
      `the plugin ${name} does not exist yet: give at least --vault-address and the auth method's credentials`,
    );
  }
  const problems = checkFinal(plugin?.env ?? {}, plan, configDir, plugin?.settable ?? []);
  if (problems.length) {
    throw new UsageError(
      `the plugin ${name} would be misconfigured; nothing was changed:\n  - ${problems.join('\n  - ')}`,
      `docker dso init --help`,
    );
  }

  // The directory must be writable before the plugin is touched (e.g. /etc/dso needs root).
  try {
    fs.mkdirSync(configDir, { recursive: true, mode: 0o700 });
    fs.accessSync(configDir, fs.constants.W_OK);
  } catch (err) {
    throw new CliError(
      EXIT.FAILURE,
      `cannot write to ${configDir} (${(err as NodeJS.ErrnoException).code ?? 'error'}); nothing was changed`,
      'run as root (sudo docker dso init ...), or choose another directory with --config-dir',
    );
  }

  if (!plugin) {
    await createPlugin(
      ctx,
      name,
      parsed.options['plugin-image'] as string | undefined,
      parsed.options['grant-all-permissions'] === true,
    );
    plugin = await ctx.docker.plugin(name);
    if (!plugin) throw new CliError(EXIT.PLUGIN, `the plugin ${name} was created but Docker does not show it`);
  }
  const shown = shortName(plugin.name);

  if (plugin.enabled) {
    await disable(ctx, plugin.name);
    ctx.io.out(`Plugin ${shown}: disabled\n`);
  }
  const leftDisabled =
    `the plugin ${shown} is left disabled; fix the cause, then run docker dso init again ` +
    `(or: docker plugin enable ${shown})`;

  try {
    for (const f of plan.files) {
      writePrivateFile(configDir, f.name, f.content, f.mode);
      ctx.io.out(`Wrote ${f.what} to ${path.join(configDir, f.name)} (mode ${f.mode.toString(8).padStart(4, '0')})\n`);
    }
    const previous = readCliMeta(configDir);
    const meta = {
      ...previous,
      mode: plan.mode ?? 'cloud',
      provider: plan.provider ?? previous.provider,
      plugin: shown,
    };
    writePrivateFile(configDir, CLI_META_FILE, `${JSON.stringify(meta, null, 2)}\n`, 0o644);
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(
      EXIT.FAILURE,
      `cannot write to ${configDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      leftDisabled,
    );
  }

  const pairs = Object.entries(plan.settings).map(([k, v]) => `${k}=${v}`);
  if (plugin.etcDsoSource !== configDir) pairs.push(`etc-dso.source=${configDir}`);
  if (pairs.length) {
    await withFix(ctx.docker.setPlugin(plugin.name, pairs), leftDisabled);
    ctx.io.out(
      `Set ${pairs.map((p) => p.slice(0, p.indexOf('='))).join(', ')} (credentials stay in ` +
        `files, never in plugin settings)\n`,
    );
  }

  await withFix(ctx.docker.enablePlugin(plugin.name, 60), leftDisabled);
  ctx.io.out(`Plugin ${shown}: enabled (secrets driver "${shown}", config dir ${configDir})\n`);

  const { api, status } = await waitForPlugin(ctx, plugin.name);
  if (status.problems.length) {
    ctx.io.err(`The plugin reports invalid settings:\n  - ${status.problems.join('\n  - ')}\n`);
    return EXIT.FAILURE;
  }
  if (parsed.options['no-test']) return EXIT.OK;
  const result = await api.testVault();
  ctx.io.out(describeTestResult(result, shown, undefined, status.settings.authMethod));
  return result.ok ? EXIT.OK : EXIT.FAILURE;
}
