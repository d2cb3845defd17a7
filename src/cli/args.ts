// Command-line parsing for `docker dso`: each command declares its flags and arguments
// once; the parser and the help text are both derived from that declaration.
import { parseArgs } from 'node:util';
import { UsageError } from './errors';

export interface OptionSpec {
  /** Long name without the dashes, e.g. "vault-address". */
  name: string;
  short?: string;
  type: 'string' | 'boolean';
  /** A string option that may be given several times (values are collected in order). */
  multiple?: boolean;
  /** Placeholder for the value in the help, e.g. "URL". */
  valueName?: string;
  description: string;
  /** Allowed values of a string option. */
  choices?: readonly string[];
}

export interface ArgSpec {
  name: string;
  required?: boolean;
  description: string;
}

export type OptionValue = string | string[] | boolean;

export interface Parsed {
  options: Record<string, OptionValue | undefined>;
  args: Record<string, string | undefined>;
}

export interface CommandSpec {
  /** e.g. ['system', 'info'] */
  path: string[];
  summary: string;
  description?: string;
  options: OptionSpec[];
  args: ArgSpec[];
  examples?: string[];
}

export const HELP_OPTION: OptionSpec = {
  name: 'help',
  short: 'h',
  type: 'boolean',
  description: 'show this help and exit',
};

/**
 * Parses `argv` against `spec` with node's own parser (`util.parseArgs`): `--name value`,
 * `--name=value`, `-x value`, `-xVALUE`, repeated options and `--`. What it leaves to
 * us: our messages, choices, `--flag=true|false`, and "did you mean".
 */
export function parseCommandLine(spec: CommandSpec, argv: string[]): Parsed {
  const options: Record<string, OptionValue | undefined> = {};
  const positional: string[] = [];
  const all = [...spec.options, HELP_OPTION];
  const byLong = new Map(all.map((o) => [o.name, o]));
  const command = `docker dso ${spec.path.join(' ')}`;
  // Non-strict: unknown flags and inline values of booleans come back as tokens, so the
  // errors below can name them the way the rest of the CLI words its errors.
  const { tokens } = parseArgs({
    args: argv,
    options: Object.fromEntries(all.map((o) => [o.name, { type: o.type, ...(o.short ? { short: o.short } : {}) }])),
    strict: false,
    allowPositionals: true,
    tokens: true,
  });

  const assign = (option: OptionSpec, value: string | boolean, shown: string): void => {
    if (option.type === 'string' && option.choices && !option.choices.includes(value as string)) {
      throw new UsageError(
        `${command}: invalid value "${value}" for ${shown}: must be one of ${option.choices.join(', ')}`,
      );
    }
    if (option.multiple) {
      const list = (options[option.name] as string[] | undefined) ?? [];
      list.push(value as string);
      options[option.name] = list;
    } else {
      options[option.name] = value;
    }
  };

  for (const token of tokens) {
    if (token.kind === 'positional') {
      positional.push(token.value);
      continue;
    }
    if (token.kind === 'option-terminator') continue;
    const option = byLong.get(token.name);
    const shown = token.rawName.startsWith('--') ? `--${token.name}` : token.rawName.slice(0, 2);
    if (!option) {
      const fix = token.rawName.startsWith('--')
        ? suggest(
            token.name,
            all.map((o) => o.name),
            `${command} --help`,
          )
        : `see: ${command} --help`;
      throw new UsageError(`${command}: unknown flag ${shown}`, fix);
    }
    if (option.type === 'boolean') {
      if (token.value === undefined) assign(option, true, shown);
      else if (token.value === 'true' || token.value === 'false') assign(option, token.value === 'true', shown);
      else throw new UsageError(`${command}: ${shown} takes no value (or =true / =false), got "${token.value}"`);
      continue;
    }
    if (token.value === undefined)
      throw new UsageError(`${command}: ${shown} needs a value${option.valueName ? ` (${option.valueName})` : ''}`);
    assign(option, token.value, shown);
  }

  if (options.help) return { options, args: {} };

  const args: Record<string, string | undefined> = {};
  if (positional.length > spec.args.length) {
    const extra = positional.slice(spec.args.length);
    throw new UsageError(
      `${command}: unexpected argument${extra.length > 1 ? 's' : ''} ${extra.map((a) => `"${a}"`).join(' ')}`,
      `usage: ${usageLine(spec)}`,
    );
  }
  spec.args.forEach((arg, i) => {
    args[arg.name] = positional[i];
    if (arg.required && positional[i] === undefined)
      throw new UsageError(`${command}: missing argument ${arg.name.toUpperCase()}`, `usage: ${usageLine(spec)}`);
  });
  return { options, args };
}

function suggest(name: string, known: string[], helpCommand: string): string {
  const close = known.filter((k) => k.includes(name) || name.includes(k) || distance(k, name) <= 2);
  return close.length
    ? `did you mean ${close.map((k) => `--${k}`).join(' or ')}? (see: ${helpCommand})`
    : `see: ${helpCommand}`;
}

/** Levenshtein distance, for "did you mean". */
export function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const saved = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = saved;
    }
  }
  return row[b.length];
}

/** The arguments as usage lines show them: SERVICE, [STACK]. */
export const argNames = (spec: CommandSpec) =>
  spec.args.map((a) => (a.required ? a.name.toUpperCase() : `[${a.name.toUpperCase()}]`));

export function usageLine(spec: CommandSpec): string {
  return ['docker dso', ...spec.path, '[OPTIONS]', ...argNames(spec)].join(' ');
}

function optionLabel(o: OptionSpec): string {
  const value = o.type === 'string' ? ` ${o.valueName ?? 'VALUE'}` : '';
  return `${o.short ? `-${o.short}, ` : '    '}--${o.name}${value}`;
}

/** Wraps `text` to `width` columns, each line after the first indented by `indent`. */
export function wrap(text: string, width: number, indent: number): string {
  const words = text.split(/\s+/).filter(Boolean);
  const lines: string[] = [];
  let line = '';
  for (const word of words) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

export function commandHelp(spec: CommandSpec, footer?: string): string {
  const out: string[] = [`Usage:  ${usageLine(spec)}`, '', spec.summary];
  if (spec.description) out.push('', spec.description);
  if (spec.args.length) {
    out.push('', 'Arguments:');
    for (const a of spec.args) out.push(`  ${a.name.toUpperCase().padEnd(28)}${wrap(a.description, 60, 30)}`);
  }
  out.push('', 'Options:');
  for (const o of [...spec.options, HELP_OPTION]) {
    const label = optionLabel(o);
    const more = [o.choices ? `(one of: ${o.choices.join(', ')})` : '', o.multiple ? '(may be repeated)' : '']
      .filter(Boolean)
      .join(' ');
    const description = more ? `${o.description} ${more}` : o.description;
    if (label.length > 27) out.push(`  ${label}`, `${' '.repeat(32)}${wrap(description, 58, 32)}`);
    else out.push(`  ${label.padEnd(30)}${wrap(description, 58, 32)}`);
  }
  if (spec.examples?.length) {
    out.push('', 'Examples:');
    for (const e of spec.examples) out.push(`  ${e}`);
  }
  if (footer) out.push('', footer);
  return `${out.join('\n')}\n`;
}
