// Exit codes scripts can rely on, and the one error class every command throws. A CliError
// carries its exit code and, when there is one, the fix to print under the message.

export const EXIT = { OK: 0, FAILURE: 1, USAGE: 2, PLUGIN: 3, DOCKER: 4 } as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** What each exit code means, as every command's --help lists it. */
const MEANING: Record<ExitCode, string> = {
  [EXIT.OK]: 'success (for checks: everything works)',
  [EXIT.FAILURE]: 'the check or the operation failed (Vault login/read, injection FAILED, deploy)',
  [EXIT.USAGE]: 'usage error (unknown command or flag, bad value); nothing was changed',
  [EXIT.PLUGIN]: 'the DSO plugin is absent, disabled or not answering on its socket',
  [EXIT.DOCKER]: 'the Docker engine does not answer, or is not a swarm manager',
};

const codes = Object.entries(MEANING).map(([code, meaning]) => `  ${code}  ${meaning}`);
export const EXIT_CODES_HELP = ['Exit codes:', ...codes].join('\n');

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
