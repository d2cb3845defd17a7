// Structured JSON logs on stdout (dockerd collects a managed plugin's stdout).
// Callers never pass secret material; as a second guard, fields whose names mean a
// credential or a value are dropped before a line is written.
import winston from 'winston';
import type { LogLevel } from './config/settings';

export type Logger = winston.Logger;

const FORBIDDEN_KEYS = new Set(['value', 'token', 'client_token', 'secret_id', 'jwt', 'password', 'x-vault-token', 'data', 'auth']);

/** Removes credential-named fields, nested ones too (a few levels deep). */
function scrub(record: Record<string, unknown>, depth: number): void {
  for (const key of Object.keys(record)) {
    const value = record[key];
    if (FORBIDDEN_KEYS.has(key.toLowerCase())) delete record[key];
    else if (depth > 0 && value && typeof value === 'object' && !Array.isArray(value)) {
      const copy = { ...(value as Record<string, unknown>) };
      scrub(copy, depth - 1);
      record[key] = copy;
    }
  }
}

const dropSecretFields = winston.format((info) => {
  scrub(info as Record<string, unknown>, 4);
  return info;
});

export function createLogger(level: LogLevel = 'info', stream: NodeJS.WritableStream = process.stdout): Logger {
  return winston.createLogger({
    level,
    format: winston.format.combine(dropSecretFields(), winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Stream({ stream })],
  });
}

/** A logger that writes nowhere, for unit tests that do not look at logs. */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}

/**
 * Logs a fault once when it starts and once when it ends, however many requests meet it
 * in between (each request still has its own GetSecret line).
 */
export class FaultLog {
  private readonly open = new Map<string, string>();

  constructor(private readonly logger: Logger) {}

  fault(key: string, message: string, fields: Record<string, unknown>): void {
    if (!this.open.has(key)) this.logger.warn(message, fields);
    this.open.set(key, message);
  }

  recovered(key: string, message: string, fields: Record<string, unknown>): void {
    if (this.open.delete(key)) this.logger.info(message, fields);
  }
}
