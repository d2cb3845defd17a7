// The Express app Docker talks to over the plugin socket. It owns the wire format:
// body parsing (Docker sends no Content-Type), validation, the deadline, reply encoding,
// one log line per GetSecret. What a secret is and where it comes from is the driver's job.
// GetSecret, the one route on every task start, is served before Express's router (no
// router, no body parser, one JSON parse); a GetSecret the fast path does not take (a
// query string, another spelling of the path, a Content-Encoding) falls through to the
// same handler behind Express's own body parser, so every behaviour stays the same.
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { NextFunction, Request, Response } from 'express';
import { DsoError, describeError, ErrorSubcode } from '../errors';
import { logLine, Logger } from '../log';
import type { StatusStore } from '../status/store';
import type { PluginStatus, RotationReport, RouteError, StatusFacts, TestVaultResult } from './contract';
import { checkComposeDown, checkComposeUp, ComposeFetch, ComposeService } from './compose-protocol';
import {
  checkGetSecretRequest,
  DeadlineSignal,
  errorReply,
  GetSecretRequest,
  SecretDriver,
  SecretSource,
  valueReply,
} from './protocol';

export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json';
export const MAX_BODY_BYTES = 1024 * 1024;

export interface AppOptions {
  driver: SecretDriver;
  logger: Logger;
  status: StatusStore;
  timeoutMs: number;
  /** Extra facts for GET /DSO.Status (settings summary, token state): never credentials. */
  describe?: () => StatusFacts;
  /** Told the outcome and duration (seconds) of every GetSecret, e.g. for metrics. */
  observe?: (outcome: 'ok' | 'error', code: string | undefined, seconds: number) => void;
  /** POST /DSO.Rotate: roll the services of one secret now. */
  rotate?: (secret: string) => Promise<RotationReport>;
  /** POST /DSO.TestVault: a login and a test read through the plugin's own code path. */
  testVault?: (reference: string | undefined) => Promise<TestVaultResult>;
  /** POST /DSO.ComposeUp, /DSO.ComposeDown, GET /DSO.Compose: files for compose projects on plain hosts. */
  compose?: ComposeService;
}

/** Replies a little before the deadline, so the reply itself still arrives within it. */
function replyDeadline(timeoutMs: number): number {
  return Math.max(50, timeoutMs - Math.min(200, Math.floor(timeoutMs * 0.05)));
}

/** What Express's res.type() + res.send() set for a JSON string. */
const REPLY_CONTENT_TYPE = `${PLUGIN_CONTENT_TYPE}; charset=utf-8`;
const GET_SECRET_PATH = '/SecretProvider.GetSecret';

function send(res: Response, status: number, body: unknown): void {
  res.status(status).type(PLUGIN_CONTENT_TYPE).send(JSON.stringify(body));
}

/** The same reply as send(), straight on node's response. */
function sendRaw(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': REPLY_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function parseBody(raw: unknown): unknown {
  const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : '';
  try {
    return JSON.parse(text);
  } catch {
    if (text.trim() === '') throw new DsoError('ERR_BAD_REQUEST', 'empty GetSecret request: expected a JSON object');
    throw new DsoError('ERR_BAD_REQUEST', 'malformed GetSecret request: the body is not valid JSON');
  }
}

/**
 * A request's deadline: for its driver, an AbortSignal's two members (without an EventTarget
 * per request); for the app, the timer that answers the request when the driver has not, and
 * whether that happened (then the driver's late result is dropped).
 */
class RequestDeadline implements DeadlineSignal {
  aborted = false;
  reason: unknown = undefined;
  timer: NodeJS.Timeout | undefined = undefined;

  constructor(
    readonly request: GetSecretRequest,
    readonly res: ServerResponse,
    /** performance.now() when the request arrived. */
    readonly started: number,
  ) {}

  abort(reason: unknown): void {
    this.aborted = true;
    this.reason = reason;
  }

  throwIfAborted(): void {
    if (this.aborted) throw this.reason;
  }

  /** The driver is done: true when it is in time to answer, false when the deadline answered already. */
  settle(): boolean {
    clearTimeout(this.timer);
    return !this.aborted;
  }
}

const NO_REQUEST: GetSecretRequest = Object.freeze({});
const NO_SOURCE: SecretSource = Object.freeze({});

/**
 * The fast path takes the request when it is exactly what Docker sends: POST to the exact
 * path, no query string, a body in identity encoding. Anything else goes through Express.
 */
function takesFastPath(req: IncomingMessage): boolean {
  if (req.method !== 'POST' || req.url !== GET_SECRET_PATH) return false;
  const encoding = req.headers['content-encoding'];
  return encoding === undefined || encoding.toLowerCase() === 'identity';
}

export function createApp(options: AppOptions): express.Express {
  const { driver, logger, status } = options;
  const deadlineMs = replyDeadline(options.timeoutMs);
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.use(express.raw({ type: () => true, limit: MAX_BODY_BYTES }));

  app.post('/Plugin.Activate', (_req, res) => send(res, 200, { Implements: ['secretprovider'] }));

  /**
   * GetSecret on a whole body (a Buffer, or what Express's parser left): reply, status record,
   * metrics, log line. The driver is awaited as it is; the request's deadline timer answers
   * for it if it has not answered in time, and a late result is dropped, never a crash.
   */
  async function getSecret(body: unknown, res: ServerResponse, started: number): Promise<void> {
    let request = NO_REQUEST;
    let deadline: RequestDeadline | undefined;
    try {
      const checked = checkGetSecretRequest(parseBody(body));
      if (!checked.request) throw new DsoError('ERR_BAD_REQUEST', checked.problem!);
      request = checked.request;
      deadline = new RequestDeadline(request, res, started);
      deadline.timer = setTimeout(expire, deadlineMs, deadline);
      const result = await driver.getSecret(request, deadline);
      if (!deadline.settle()) return;
      sendRaw(res, 200, valueReply(result));
      record(request, result.source, started, { outcome: 'ok', doNotReuse: result.doNotReuse });
    } catch (err) {
      // Even a driver that throws synchronously lands here, and its deadline timer is cleared.
      if (deadline && !deadline.settle()) return;
      fail(request, err, res, started);
    }
  }

  /** The deadline passed before the driver answered: ERR_TIMEOUT, and the driver is told to stop. */
  function expire(deadline: RequestDeadline): void {
    const err = new DsoError(
      'ERR_TIMEOUT',
      `no answer from Vault within DSO_TIMEOUT (${options.timeoutMs} ms); check that Vault is reachable and unsealed`,
    );
    deadline.abort(err);
    fail(deadline.request, err, deadline.res, deadline.started);
  }

  /** A GetSecret that ends in an error: its reply (400 for a bad request, else 500), record and log line. */
  function fail(request: GetSecretRequest, err: unknown, res: ServerResponse, started: number): void {
    const { code, message, subcode } = describeError(err);
    const source = (err as { source?: SecretSource } | undefined)?.source ?? NO_SOURCE;
    if (!res.headersSent) sendRaw(res, code === 'ERR_BAD_REQUEST' ? 400 : 500, errorReply(message));
    record(request, source, started, { outcome: 'error', code, subcode, error: message });
    if (code === 'ERR_INTERNAL')
      logger.error('unexpected error while serving GetSecret', { error: String((err as Error)?.stack ?? err) });
  }

  /** Reads the body itself (the 1 MiB limit as express.raw applies it) and serves GetSecret. */
  function fastGetSecret(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    const declared = Number(req.headers['content-length']);
    const refuse = () => {
      logger.warn('request refused', {
        route: GET_SECRET_PATH,
        code: 'ERR_BAD_REQUEST',
        error: `body larger than ${MAX_BODY_BYTES} bytes`,
      });
      sendRaw(res, 413, errorReply(`request body larger than ${MAX_BODY_BYTES} bytes`));
      req.resume();
    };
    if (declared > MAX_BODY_BYTES) return refuse();
    const chunks: Buffer[] = [];
    let size = 0;
    /** Served or refused: later events of this body change nothing. */
    let done = false;
    const serve = () => {
      done = true;
      void getSecret(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size), res, started);
    };
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        done = true;
        chunks.length = 0;
        return refuse();
      }
      chunks.push(chunk);
      // The whole declared body is here (node's parser never passes more than Content-Length):
      // served now, not once node emits 'end' from a later nextTick callback.
      if (size === declared) serve();
    });
    req.on('end', () => {
      if (!done) serve();
    });
    // An aborted request has no one left to answer; its socket is already gone.
    req.on('error', () => undefined);
  }

  type Handle = (req: IncomingMessage, res: ServerResponse, next?: NextFunction) => void;
  // express() is `(req, res, next) => app.handle(req, res, next)`: this is the one place every request passes.
  const mounted = app as unknown as { handle: Handle };
  const routed = mounted.handle.bind(app);
  mounted.handle = (req, res, next) => (takesFastPath(req) ? fastGetSecret(req, res) : routed(req, res, next));

  app.post(GET_SECRET_PATH, (req: Request, res: Response) => getSecret(req.body, res, performance.now()));

  app.get('/DSO.Status', (req, res) => {
    const service = typeof req.query.service === 'string' ? req.query.service : undefined;
    // describe() is always given by wiring.ts; unit tests of the records may leave it out.
    const records = { secrets: status.latestRecords(service), recent: status.recentRecords() };
    const reply: Partial<PluginStatus> = { ...options.describe?.(), ...records };
    send(res, 200, reply);
  });

  app.post('/DSO.Rotate', async (req, res) => {
    if (!options.rotate) {
      return send(res, 404, { Err: 'rotation is not available in this plugin', code: 'ERR_UNSUPPORTED' });
    }
    let secret: unknown;
    try {
      secret = (JSON.parse(Buffer.isBuffer(req.body) ? req.body.toString('utf8') : '') as { Secret?: unknown }).Secret;
    } catch {
      secret = undefined;
    }
    if (typeof secret !== 'string' || secret === '')
      return send(res, 400, { Err: 'expected {"Secret": "<secret name or ID>"}' });
    try {
      return send(res, 200, await options.rotate(secret));
    } catch (err) {
      const { code, message, subcode } = describeError(err);
      const body: RouteError = { Err: message, code, subcode };
      return send(res, code === 'ERR_NOT_FOUND' ? 404 : 500, body);
    }
  });

  app.post('/DSO.TestVault', async (req, res) => {
    if (!options.testVault) return send(res, 404, { Err: 'this plugin has no Vault test' });
    let reference: string | undefined;
    try {
      const body =
        Buffer.isBuffer(req.body) && req.body.length
          ? (JSON.parse(req.body.toString('utf8')) as { Reference?: unknown })
          : {};
      if (body.Reference !== undefined && typeof body.Reference !== 'string')
        throw new Error('Reference must be a string');
      reference = body.Reference as string | undefined;
    } catch (err) {
      return send(res, 400, { Err: `malformed test request: ${(err as Error).message}` });
    }
    const result = await options.testVault(reference);
    return send(res, 200, result);
  });

  // Compose projects on plain hosts (see compose-protocol.ts): values go to files on a tmpfs,
  // never into the reply.
  const jsonBody = (req: Request): unknown => {
    try {
      return JSON.parse(Buffer.isBuffer(req.body) ? req.body.toString('utf8') : '');
    } catch {
      return undefined;
    }
  };
  const composeError = (res: Response, err: unknown) => {
    const { code, message, subcode } = describeError(err);
    if (code === 'ERR_INTERNAL')
      logger.error('unexpected error in a compose route', { error: String((err as Error)?.stack ?? err) });
    const status =
      code === 'ERR_BAD_REQUEST' || code === 'ERR_LABELS' || code === 'ERR_REFERENCE' || code === 'ERR_TEMPLATE'
        ? 400
        : code === 'ERR_NOT_FOUND'
          ? 404
          : 500;
    const body: RouteError = { Err: message, code, subcode };
    send(res, status, body);
  };

  app.post('/DSO.ComposeUp', async (req, res) => {
    if (!options.compose)
      return send(res, 404, { Err: 'this plugin serves no compose projects', code: 'ERR_UNSUPPORTED' });
    const checked = checkComposeUp(jsonBody(req));
    if (!checked.request) return send(res, 400, { Err: checked.problem, code: 'ERR_BAD_REQUEST' });
    const project = checked.request.Project;
    const started = performance.now();
    const recordFetch = (f: ComposeFetch) =>
      record(
        {
          SecretName: f.spec.Name,
          ServiceName: f.spec.Service,
          ServiceID: `compose:${project}/${f.spec.Service}`,
          TaskName: `${project}-${f.spec.Service}`,
        },
        f.source,
        started,
        f.ok
          ? { outcome: 'ok', doNotReuse: f.doNotReuse }
          : { outcome: 'error', code: f.code, subcode: f.subcode, error: f.error },
      );
    try {
      return send(res, 200, await options.compose.up(checked.request, recordFetch));
    } catch (err) {
      return composeError(res, err);
    }
  });

  app.post('/DSO.ComposeDown', async (req, res) => {
    if (!options.compose)
      return send(res, 404, { Err: 'this plugin serves no compose projects', code: 'ERR_UNSUPPORTED' });
    const checked = checkComposeDown(jsonBody(req));
    if (!checked.request) return send(res, 400, { Err: checked.problem, code: 'ERR_BAD_REQUEST' });
    try {
      return send(res, 200, await options.compose.down(checked.request.Project));
    } catch (err) {
      return composeError(res, err);
    }
  });

  app.get('/DSO.Compose', (req, res) => {
    if (!options.compose)
      return send(res, 404, { Err: 'this plugin serves no compose projects', code: 'ERR_UNSUPPORTED' });
    const project = typeof req.query.project === 'string' ? req.query.project : undefined;
    return send(res, 200, options.compose.list(project));
  });

  app.use((req, res) => send(res, 404, { Err: `unknown plugin route ${req.method} ${req.path}` }));

  // Body parser errors (too large, aborted) and anything unexpected: a reply, never a crash.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = err as { type?: string; status?: number };
    if (e.type === 'entity.too.large') {
      logger.warn('request refused', {
        route: req.path,
        code: 'ERR_BAD_REQUEST',
        error: `body larger than ${MAX_BODY_BYTES} bytes`,
      });
      return send(res, 413, errorReply(`request body larger than ${MAX_BODY_BYTES} bytes`));
    }
    if (e.status && e.status >= 400 && e.status < 500) {
      logger.warn('request refused', {
        route: req.path,
        code: 'ERR_BAD_REQUEST',
        error: e.type ?? 'malformed request',
      });
      return send(res, e.status, errorReply('malformed request'));
    }
    logger.error('unexpected error in the plugin server', { error: String((err as Error)?.stack ?? err) });
    return send(res, 500, errorReply('internal error (see the plugin log)'));
  });

  function record(
    request: GetSecretRequest,
    source: SecretSource,
    /** performance.now() when the request arrived. */
    started: number,
    outcome: { outcome: 'ok' | 'error'; code?: string; subcode?: ErrorSubcode; error?: string; doNotReuse?: boolean },
  ): void {
    // Whole microseconds, in ms.
    const durationMs = Math.floor((performance.now() - started) * 1000) / 1000;
    const atMs = Date.now();
    // One object is the log line's fields and the status record's facts, in the line's order
    // (fields left undefined are not written). Written out, one shape for every request.
    const facts = {
      service: request.ServiceName ?? '',
      serviceId: request.ServiceID ?? '',
      task: request.TaskName ?? request.TaskID ?? '',
      secret: request.SecretName ?? '',
      path: source.path,
      field: source.field,
      version: source.version,
      leaseExpiresAt: source.leaseExpiresAt,
      outcome: outcome.outcome,
      code: outcome.code,
      subcode: outcome.subcode,
      error: outcome.error,
      doNotReuse: outcome.doNotReuse,
      durationMs,
    };
    status.record(facts, atMs);
    options.observe?.(outcome.outcome, outcome.code, durationMs / 1000);
    logLine(logger, outcome.outcome === 'ok' ? 'info' : 'warn', 'GetSecret', facts, new Date(atMs).toISOString());
  }

  return app;
}
