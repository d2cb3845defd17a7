// Credentials handed to `init` (secret id, token, JWT) go from the user to a 0600 file in
// the plugin's /etc/dso directory and nowhere else: never `docker plugin set`, never a
// child process's argv. They are read from standard input ("-") or a file ("@path");
// a literal value works too (the seed's own invocation) but is visible to `ps`.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Io } from './context';
import { UsageError } from './errors';

export interface CredentialSource {
  flag: string;
  /** "-" (stdin), "@file" or the value itself */
  spec: string;
}

export interface ReadCredential {
  value: string;
  /** Where it came from, for messages (never the value). */
  from: 'stdin' | 'file' | 'argument';
}

/** Reads each credential; at most one may come from standard input. */
export async function readCredentials(sources: CredentialSource[], io: Io): Promise<Map<string, ReadCredential>> {
  const fromStdin = sources.filter((s) => s.spec === '-');
  if (fromStdin.length > 1) {
    throw new UsageError(
      `only one credential can be read from standard input; got "-" for ${fromStdin.map((s) => s.flag).join(' and ')}`,
      'give the others as @FILE',
    );
  }
  const out = new Map<string, ReadCredential>();
  for (const source of sources) {
    let raw: string;
    let from: ReadCredential['from'];
    if (source.spec === '-') {
      if (io.stdinIsTTY) io.err(`Reading ${source.flag} from standard input (end with Ctrl-D)...\n`);
      raw = (await io.readStdin()).toString('utf8');
      from = 'stdin';
    } else if (source.spec.startsWith('@')) {
      raw = readGivenFile(source.flag, path.resolve(io.cwd, source.spec.slice(1))).toString('utf8');
      from = 'file';
    } else {
      raw = source.spec;
      from = 'argument';
    }
    out.set(source.flag, { value: checkCredential(raw, source.flag), from });
  }
  return out;
}

/** A file a flag names, read whole; a UsageError naming the flag when it cannot be read. */
export function readGivenFile(flag: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new UsageError(`${flag}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** Trims the line end an `echo` or editor adds; refuses empty or multi-line values. */
export function checkCredential(raw: string, flag: string): string {
  const value = raw.replace(/^\s+|\s+$/g, '');
  if (value === '') throw new UsageError(`${flag}: the value is empty`);
  if (/[\r\n]/.test(value)) throw new UsageError(`${flag}: the value holds several lines; give exactly one`);
  if (/\s/.test(value)) throw new UsageError(`${flag}: the value holds whitespace, which no Vault credential does`);
  return value;
}

/**
 * Writes `content` to `dir/name` with `mode`, atomically: a temporary file created with
 * that mode from the start (never readable by others, not even for an instant), then renamed.
 */
export function writePrivateFile(dir: string, name: string, content: string | Buffer, mode = 0o600): string {
  const target = path.join(dir, name);
  const temp = path.join(dir, `.${name}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
  const fd = fs.openSync(temp, 'wx', mode);
  try {
    fs.writeSync(fd, typeof content === 'string' ? Buffer.from(content, 'utf8') : content);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.chmodSync(temp, mode); // the umask may have narrowed it; never widened
    fs.renameSync(temp, target);
  } catch (err) {
    fs.rmSync(temp, { force: true });
    throw err;
  }
  return target;
}
