// `docker dso`: the Docker CLI plugin's dispatcher. Answers Docker's metadata handshake,
// strips what Docker puts before the plugin's own arguments, finds the command, parses its
// flags and turns every error into a message, a fix and an exit code.
import * as path from 'node:path';
import { argNames, CommandSpec, commandHelp, distance, parseCommandLine, Parsed } from './args';
import * as info from './commands/info';
import * as init from './commands/init';
import * as inspect from './commands/inspect';
import * as rotate from './commands/rotate';
import * as testVault from './commands/test-vault';
import * as up from './commands/up';
import * as down from './commands/down';
import type { Context } from './context';
import { readJson } from './docker';
import { CliError, EXIT, EXIT_CODES_HELP } from './errors';

export const METADATA_SUBCOMMAND = 'docker-cli-plugin-metadata';
export const PLUGIN_COMMAND = 'dso';

interface Command {
  spec: CommandSpec;
  run(ctx: Context, parsed: Parsed): Promise<number>;
}

const versionCommand: Command = {
  spec: { path: ['version'], summary: 'Show the version of docker-dso', options: [], args: [] },
  run: async (ctx) => {
    ctx.io.out(`docker-dso ${ctx.version}\n`);
    return EXIT.OK;
  },
};

export const COMMANDS: Command[] = [init, info, testVault, inspect, up, down, rotate, versionCommand];

export function readVersion(): string {
  // dist/cli -> repository root (also build/src/cli in the test build).
  for (let dir = __dirname, i = 0; i < 5; i++, dir = path.dirname(dir)) {
    const pkg = readJson<{ name?: string; version?: string }>(path.join(dir, 'package.json'));
    if (pkg?.name === 'dso-vault' && pkg.version) return pkg.version;
  }
  return '0.0.0-unknown';
}

export function metadata(version: string): Record<string, string> {
  return {
    SchemaVersion: '0.1.0',
    Vendor: 'DSO',
    Version: version,
    ShortDescription: 'Vault and OpenBao secrets for Docker Swarm (DSO plugin)',
    URL: 'https://github.com/dso-project/dso',
  };
}

// Global flags of `docker` itself, which Docker hands to a CLI plugin before the plugin's name.
const DOCKER_FLAGS_WITH_VALUE = new Set([
  '--config',
  '-c',
  '--context',
  '-H',
  '--host',
  '-l',
  '--log-level',
  '--tlscacert',
  '--tlscert',
  '--tlskey',
]);
const DOCKER_BOOLEAN_FLAGS = new Set(['-D', '--debug', '--tls', '--tlsverify']);

/**
 * Docker runs a CLI plugin as `docker-dso [docker's global flags] dso <args>`; run directly
 * it is `docker-dso <args>`. Returns docker's global flags (to pass on) and our arguments.
 */
export function splitInvocation(argv: string[]): { dockerArgs: string[]; args: string[] } {
  const dockerArgs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === PLUGIN_COMMAND) return { dockerArgs, args: argv.slice(i + 1) };
    const name = a.includes('=') ? a.slice(0, a.indexOf('=')) : a;
    if (DOCKER_FLAGS_WITH_VALUE.has(name)) {
      dockerArgs.push(a);
      if (!a.includes('=') && i + 1 < argv.length) dockerArgs.push(argv[++i]);
    } else if (DOCKER_BOOLEAN_FLAGS.has(name)) {
      dockerArgs.push(a);
    } else {
      break;
    }
  }
  return { dockerArgs: [], args: argv };
}

/** "inspect SERVICE", "up [STACK]": a command's words and arguments, as the command lists show it. */
const commandLine = (spec: CommandSpec, words = spec.path) => [...words, ...argNames(spec)].join(' ');

export function mainHelp(): string {
  const rows = COMMANDS.map((c) => [commandLine(c.spec), c.spec.summary]);
  return [
    'Usage:  docker dso [--plugin NAME] COMMAND',
    '',
    'DSO: HashiCorp Vault and OpenBao secrets for Docker Swarm. The DSO managed plugin serves secrets',
    'created with --driver dso; this command sets it up, diagnoses it and deploys compose files.',
    '',
    'Commands:',
    ...rows.map(([c, s]) => `  ${c.padEnd(20)}${s}`),
    '',
    'Options (every command):',
    '  --plugin NAME       the DSO plugin, also the secrets driver name (default: $DSO_PLUGIN or "dso")',
    '  -h, --help          help of the command',
    '',
    "Run 'docker dso COMMAND --help' for a command's flags.",
    "Run docker dso on a swarm manager where the plugin is installed, as root (plugin sockets are root's).",
    'On a host without swarm, up and down run compose projects with secret files on a tmpfs.',
    '',
    EXIT_CODES_HELP,
    '',
  ].join('\n');
}

function systemHelp(): string {
  const system = COMMANDS.filter((c) => c.spec.path[0] === 'system');
  return [
    'Usage:  docker dso system COMMAND',
    '',
    'Inspect the DSO plugin and its connection to Vault',
    '',
    'Commands:',
    ...system.map((c) => `  ${commandLine(c.spec, c.spec.path.slice(1)).padEnd(20)}${c.spec.summary}`),
    '',
    "Run 'docker dso system COMMAND --help' for more information on a command.",
    '',
  ].join('\n');
}

/** Index of the first word that is not a flag (or the value of a flag that takes one) at or after `from`. */
function nextWord(args: string[], from: number): number {
  for (let i = from; i < args.length; i++) {
    const a = args[i];
    if (a === '--plugin' || a === '-f' || a === '--file' || a === '--path') {
      i++;
      continue;
    }
    if (!a.startsWith('-') || a === '-') return i;
  }
  return -1;
}

/** The command `args` names, and the arguments left for it; or help text / an error. */
export function findCommand(args: string[]): { command?: Command; rest: string[]; help?: string } {
  const at = nextWord(args, 0);
  if (at < 0) return { rest: [], help: mainHelp() };
  const first = args[at];
  const without = (...indexes: number[]) => args.filter((_, i) => !indexes.includes(i));
  if (first === 'help') {
    // `docker help dso [COMMAND]` reaches the plugin as `help dso [COMMAND]`.
    const target = args.slice(at + 1).filter((a, i) => !(i === 0 && a === PLUGIN_COMMAND));
    if (target.length === 0) return { rest: [], help: mainHelp() };
    const found = findCommand(target);
    return {
      rest: [],
      help: found.command ? commandHelp(found.command.spec, EXIT_CODES_HELP) : (found.help ?? mainHelp()),
    };
  }
  if (first === 'system') {
    const at2 = nextWord(args, at + 1);
    if (at2 < 0) return { rest: [], help: systemHelp() };
    const second = args[at2];
    const command = COMMANDS.find((c) => c.spec.path[0] === 'system' && c.spec.path[1] === second);
    if (!command)
      throw new CliError(
        EXIT.USAGE,
        `unknown command: docker dso system ${second}`,
        'see: docker dso system --help (info, test-vault)',
      );
    return { command, rest: without(at, at2) };
  }
  const command = COMMANDS.find((c) => c.spec.path.length === 1 && c.spec.path[0] === first);
  if (!command) {
    const known = [...new Set(COMMANDS.map((c) => c.spec.path[0]))];
    const close = known.filter((k) => distance(k, first) <= 2);
    const hint =
      first === 'info' || first === 'test-vault'
        ? `did you mean: docker dso system ${first}?`
        : close.length
          ? `did you mean: ${close.map((c) => `docker dso ${c}`).join(' or ')}?`
          : 'see: docker dso --help';
    throw new CliError(EXIT.USAGE, `unknown command: docker dso ${first}`, hint);
  }
  return { command, rest: without(at) };
}

function report(ctx: Context, err: unknown): number {
  if (err instanceof CliError) {
    ctx.io.err(err.message.startsWith('docker dso') ? `${err.message}\n` : `docker dso: ${err.message}\n`);
    if (err.fix) ctx.io.err(`Fix: ${err.fix.split('\n').join('\n     ')}\n`);
    return err.exitCode;
  }
  ctx.io.err(`docker dso: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
  return EXIT.FAILURE;
}

/** Runs the CLI for `argv` (process.argv without node and the script); resolves the exit code. */
export async function runCli(argv: string[], makeContext: (dockerArgs: string[]) => Context): Promise<number> {
  const { dockerArgs, args } = splitInvocation(argv);
  const ctx = makeContext(dockerArgs);
  if (argv[0] === METADATA_SUBCOMMAND) {
    ctx.io.out(`${JSON.stringify(metadata(ctx.version), null, 2)}\n`);
    return EXIT.OK;
  }
  try {
    if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) args[0] = 'version';
    if (args.length === 1 && (args[0] === '--help' || args[0] === '-h')) {
      ctx.io.out(mainHelp());
      return EXIT.OK;
    }
    const found = findCommand(args);
    if (!found.command) {
      ctx.io.out(found.help ?? mainHelp());
      return EXIT.OK;
    }
    const parsed = parseCommandLine(found.command.spec, found.rest);
    if (parsed.options.help) {
      ctx.io.out(commandHelp(found.command.spec, EXIT_CODES_HELP));
      return EXIT.OK;
    }
    return await found.command.run(ctx, parsed);
  } catch (err) {
    return report(ctx, err);
  }
}
