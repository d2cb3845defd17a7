// Exit codes scripts can rely on, and the one error class every command throws. A CliError
// carries its exit code and, when there is one, the fix to print under the message.

export const EXIT = {
  /** Done; for checks: everything works. */
  OK: 0,
  /** The command ran and found a failure: Vault login or read failed, injection FAILED, deploy failed. */
  FAILURE: 1,
  /** Wrong command line: unknown command or flag, missing or invalid value. Nothing was changed. */
  USAGE: 2,
  /** The DSO plugin is absent, disabled, or its socket does not answer. */
  PLUGIN: 3,
  /** The Docker engine does not answer, or is not a swarm manager. */
  DOCKER: 4,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export const EXIT_CODES_HELP = [
  'Exit codes:',
  '  0  success (for checks: everything works)',
  '  1  the check or the operation failed (Vault login/read, injection FAILED, deploy)',
  '  2  usage error (unknown command or flag, bad value); nothing was changed',
  '  3  the DSO plugin is absent, disabled or not answering on its socket',
  '  4  the Docker engine does not answer, or is not a swarm manager',
].join('\n');

export class CliError extends Error {
  constructor(
    readonly exitCode: ExitCode,
    message: string,
    /** What to do about it, printed as "Fix: ..." lines. */
    readonly fix?: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export class UsageError extends CliError {
  constructor(message: string, fix?: string) {
    super(EXIT.USAGE, message, fix);
    this.name = 'UsageError';
  }
}
