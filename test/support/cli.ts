// `docker dso` inside a unit test: a Context whose output is kept in memory, built from the
// fakes a suite gives, and a runner that returns the exit code with what was printed.
import { runCli } from '../../src/cli/cli';
import type { Context, Io } from '../../src/cli/context';

export interface CliRun {
  code: number;
  out: string;
  err: string;
}

export interface CliHarness {
  ctx: Context;
  /** Everything written to standard output and error, one entry a write. */
  out: string[];
  err: string[];
  /** Runs `docker dso <args>` in ctx: what it printed in this run only, and the exit code. */
  cli(...args: string[]): Promise<CliRun>;
}

/** A context from `parts` whose output streams write to `out` and `err`. */
export function cliHarness(io: Omit<Io, 'out' | 'err'>, parts: Omit<Context, 'io'>): CliHarness {
  const out: string[] = [];
  const err: string[] = [];
  const ctx: Context = { io: { out: (t) => out.push(t), err: (t) => err.push(t), ...io }, ...parts };
  const cli = async (...args: string[]): Promise<CliRun> => {
    out.length = 0;
    err.length = 0;
    const code = await runCli(['dso', ...args], () => ctx);
    return { code, out: out.join(''), err: err.join('') };
  };
  return { ctx, out, err, cli };
}
