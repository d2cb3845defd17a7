// Structured JSON logs on stdout (dockerd collects a managed plugin's stdout).
// Callers never pass secret material; as a second guard, fields whose names mean a
// credential or a value are dropped before a line is written.
import winston from 'winston';
import type { LogLevel } from './config/settings';

export type Logger = winston.Logger;

const FORBIDDEN_KEYS = new Set(['value', 'token', 'client_token', 'secret_id', 'jwt', 'password', 'x-vault-token', 'data', 'auth']);

const dropSecretFields = winston.format((info) => {
  for (const key of Object.keys(info)) {
    if (FORBIDDEN_KEYS.has(key.toLowerCase())) delete (info as Record<string, unknown>)[key];
  }
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
