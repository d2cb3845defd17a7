// Structured JSON logs on stdout (dockerd collects a managed plugin's stdout). Winston is the
// logger everyone holds; under it, one format (credential-named fields dropped at any depth,
// timestamp, JSON in a single pass) and a line sink that batches stdout: lines written within
// LINE_BATCH_MS leave in one write, not one synchronous write each (at one request at a time,
// a batch per turn of the event loop would still be a write per request). The GetSecret
// line (one per request) skips winston's stream pipeline through `logLine`, with the same
// redaction and the same line shape. Callers never pass secret material; the redaction is
// a second guard.
import winston from 'winston';
import Transport from 'winston-transport';
import type { LogLevel } from './config/settings';

export type Logger = winston.Logger;

const FORBIDDEN_KEYS = new Set([
  'value',
  'token',
  'client_token',
  'secret_id',
  'jwt',
  'password',
  'x-vault-token',
  'data',
  'auth',
]);
const MESSAGE = Symbol.for('message');

/** JSON.stringify replacer: drops credential-named fields whatever their depth or case. */
function redact(key: string, value: unknown): unknown {
  return key !== '' && FORBIDDEN_KEYS.has(key.toLowerCase()) ? undefined : value;
}

/** Field names found to be no credential's; a line's names are few and the same on every request. */
const ALLOWED_KEYS = new Set<string>();

/**
 * Fields of plain values under names that are no credential's: the redaction would drop
 * nothing, so they are serialized without a replacer (several times faster).
 */
function flat(fields: Record<string, unknown>): boolean {
  for (const key in fields) {
    const value = fields[key];
    if ((typeof value === 'object' && value !== null) || typeof value === 'bigint') return false;
    if (ALLOWED_KEYS.has(key)) continue;
    if (FORBIDDEN_KEYS.has(key.toLowerCase())) return false;
    // Bounded: names are the code's own; should a caller ever make them up, the check just runs again.
    if (ALLOWED_KEYS.size < 256) ALLOWED_KEYS.add(key);
  }
  return true;
}

/** One JSON object; fields that cannot be serialized (a cycle, a BigInt) cost the fields, never the line. */
function serialize(record: object, level: string, message: unknown): string {
  try {
    return JSON.stringify(record, redact);
  } catch {
    return JSON.stringify({
      level,
      message: String(message),
      logError: 'log fields not serializable',
      timestamp: new Date().toISOString(),
    });
  }
}

/** How long a line may wait on stdout for others to leave with it. */
const LINE_BATCH_MS = 10;

/** Where lines go: batched on stdout (LINE_BATCH_MS, 64 KiB at most); at once elsewhere (tests read those at once). */
class LineSink {
  /** The logger level `enabled` was found for: winston's isLevelEnabled() builds its transport list on every call. */
  enabledFor?: string;
  readonly enabled = { info: false, warn: false };
  private pending = '';
  private scheduled = false;
  private readonly batch: boolean;

  constructor(private readonly stream: NodeJS.WritableStream) {
    this.batch = stream === process.stdout;
    // What is still pending when the process exits is written then (stdout to a file or a pipe is synchronous).
    if (this.batch) process.once('exit', () => this.flush());
  }

  write(line: string): void {
    if (!this.batch) {
      this.stream.write(`${line}\n`);
      return;
    }
    this.pending += `${line}\n`;
    if (this.pending.length >= 64 * 1024) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      // Never what keeps the process alive: what is pending at exit is written then.
      setTimeout(this.flush, LINE_BATCH_MS).unref();
    }
  }

  readonly flush = (): void => {
    this.scheduled = false;
    if (this.pending === '') return;
    const text = this.pending;
    this.pending = '';
    this.stream.write(text);
  };
}

class SinkTransport extends Transport {
  constructor(private readonly sink: LineSink) {
    super();
  }

  override log(info: Record<string | symbol, unknown>, callback: () => void): void {
    this.sink.write(info[MESSAGE] as string);
    callback();
  }
}

const oneLine = winston.format((info) => {
  info.timestamp = new Date().toISOString();
  (info as Record<symbol, unknown>)[MESSAGE] = serialize(info, String(info.level), info.message);
  return info;
});

const sinks = new WeakMap<Logger, LineSink>();

export function createLogger(level: LogLevel = 'info', stream: NodeJS.WritableStream = process.stdout): Logger {
  const sink = new LineSink(stream);
  const logger = winston.createLogger({ level, format: oneLine(), transports: [new SinkTransport(sink)] });
  sinks.set(logger, sink);
  return logger;
}

/**
 * One line for a request, the same as `logger[level](message, fields)` writes (fields, level,
 * message, timestamp; redacted), without winston's per-call stream and format pipeline.
 */
export function logLine(
  logger: Logger,
  level: 'info' | 'warn',
  message: string,
  fields: Record<string, unknown>,
  /** The line's timestamp when the caller has it already (ISO 8601), else now. */
  timestamp = new Date().toISOString(),
): void {
  const sink = sinks.get(logger);
  if (!sink) {
    logger.log(level, message, fields);
    return;
  }
  if (logger.silent) return;
  if (sink.enabledFor !== logger.level) {
    sink.enabled.info = logger.isLevelEnabled('info');
    sink.enabled.warn = logger.isLevelEnabled('warn');
    sink.enabledFor = logger.level;
  }
  if (!sink.enabled[level]) return;
  const text = flat(fields) ? JSON.stringify(fields) : serialize(fields, level, message);
  const tail = `"level":"${level}","message":${JSON.stringify(message)},"timestamp":"${timestamp}"}`;
  sink.write(text.length > 2 ? `${text.slice(0, -1)},${tail}` : `{${tail}`);
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
