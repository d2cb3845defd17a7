// `docker dso system test-vault`: a fresh login and (with --path) a read, through the
// plugin's own code path (POST /DSO.TestVault); on failure the exact cause and the fix.
import { shortName } from '../../docker/objects';
import type { CommandSpec, Parsed } from '../args';
import { Context, JSON_OPTION, PLUGIN_OPTION, pluginName, printJson, requirePlugin } from '../context';
import { EXIT } from '../errors';
import { FixContext, fixFor } from '../fixes';
import { errorAndFix, formatDuration } from '../format';
import type { TestVaultResult } from '../plugin-client';

export const spec: CommandSpec = {
  path: ['system', 'test-vault'],
  summary: 'Log in to Vault through the plugin and read a test path; say exactly what failed and how to fix it',
  description: [
    'The plugin logs in afresh with its own settings and credentials and, with --path, reads the',
    'reference exactly as it would for a secret (same policy checks, same errors). No value is shown:',
    'only its path, version and size. Exits 0 when everything worked, 1 when the login or the read failed.',
  ].join('\n'),
  options: [
    {
      name: 'path',
      type: 'string',
      valueName: 'REF',
      description: 'a reference to read: dso://<path>[#<field>] (the dso:// may be left out)',
    },
    JSON_OPTION,
    PLUGIN_OPTION,
  ],
  args: [],
  examples: ['docker dso system test-vault', 'docker dso system test-vault --path dso://secret/data/app/db#password'],
};

export function normalizeReference(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  return t.startsWith('dso://') ? t : `dso://${t.replace(/^\/+/, '')}`;
}

/** The fix of a failed test: settings are ERR_SETTINGS, a login failure without a code ERR_LOGIN. */
function testFix(result: TestVaultResult, ctx: FixContext): string {
  const code = result.stage === 'settings' ? 'ERR_SETTINGS' : result.stage === 'login' ? 'ERR_LOGIN' : undefined;
  return fixFor(result.stage === 'settings' ? { code } : { ...result, code: result.code ?? code }, ctx);
}

export function describeTestResult(
  result: TestVaultResult,
  plugin: string,
  reference?: string,
  method?: string,
): string {
  const lines: string[] = [];
  const login = result.login;
  const loginLine = login
    ? `OK: ${login.method ?? '?'} at ${login.mount ?? '?'}, token TTL ` +
      `${login.ttlSeconds ? formatDuration(login.ttlSeconds) : 'none (does not expire)'}, ` +
      `policies ${(login.policies ?? []).join(', ') || '-'}`
    : '';
  const ctx = { plugin, method: login?.method ?? method, mount: login?.mount };
  if (result.stage === 'settings') {
    lines.push('Plugin settings: INVALID', errorAndFix(result.error ?? 'invalid settings', testFix(result, ctx)));
  } else if (result.stage === 'login') {
    lines.push('Vault login:     FAILED', errorAndFix(result.error ?? 'login failed', testFix(result, ctx)));
  } else {
    lines.push(`Vault login:     ${loginLine}`);
    if (result.stage === 'read') {
      lines.push(
        `Test read:       FAILED (${reference ?? 'reference'})`,
        errorAndFix(result.error ?? 'read failed', testFix(result, ctx)),
      );
    } else if (result.read) {
      const r = result.read;
      const what = `${r.path ?? '?'}${r.field ? `#${r.field}` : ''}`;
      lines.push(
        `Test read:       OK: ` +
          `${what}${r.version !== undefined ? `, version ${r.version}` : ''}, ${r.bytes ?? '?'} ` +
          `bytes (value not shown)`,
      );
    } else {
      lines.push('Test read:       skipped (give --path dso://<path>#<field> to test a read as well)');
    }
  }
  lines.push(result.ok ? 'Result:          OK' : 'Result:          FAILED');
  return `${lines.join('\n')}\n`;
}

export async function run(ctx: Context, parsed: Parsed): Promise<number> {
  const name = pluginName(ctx, parsed);
  const reference = normalizeReference(parsed.options.path as string | undefined);
  const { info, api } = await requirePlugin(ctx, name);
  const shown = shortName(info.name);
  const result = await api.testVault(reference);
  if (parsed.options.json) {
    const fix = result.ok ? undefined : testFix(result, { plugin: shown, ...result.login });
    printJson(ctx, { plugin: shown, reference: reference ?? null, ...result, ...(fix ? { fix } : {}) });
  } else {
    ctx.io.out(describeTestResult(result, shown, reference));
  }
  return result.ok ? EXIT.OK : EXIT.FAILURE;
}
