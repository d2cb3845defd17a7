// What the plugin knows about each secret it served: the last outcome per service and
// secret, and a short history. Docker hides a driver's errors from users; this is where
// `docker dso inspect` and the tests find them. Never holds a value.
import type { ErrorSubcode } from '../errors';

export interface FetchRecord {
  at: string;
  service: string;
  serviceId: string;
  task: string;
  secret: string;
  path?: string;
  field?: string;
  version?: number;
  leaseExpiresAt?: string;
  outcome: 'ok' | 'error';
  code?: string;
  /** Which fix applies where one code has several (errors.ts ErrorSubcode). */
  subcode?: ErrorSubcode;
  error?: string;
  doNotReuse?: boolean;
  durationMs: number;
}

/** What Date.prototype.toISOString() writes for years 0 to 9999. */
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** Epoch ms of an ISO 8601 time; the text itself should it not be one. */
function timeOf(at: string): number | string {
  // Date.parse() of toISOString()'s form gives back exactly the time that wrote it.
  const ms = ISO_TIME.test(at) ? Date.parse(at) : NaN;
  return Number.isFinite(ms) ? ms : at;
}

/** A record as given to the store: its time as text, or apart as epoch ms. */
export type RecordFacts = Omit<FetchRecord, 'at'> & { at?: string };

/** The service a record belongs to: kept once per service, not once per record. */
interface Service {
  readonly service: string;
  readonly serviceId: string;
}

/** The last record of each secret of one service. */
interface ServiceRecords extends Service {
  /** Secret name -> its last record (see keep()). */
  readonly secrets: Map<string, string>;
}

/** A record of the history: whose it is, and its facts (see keep()). */
interface HistoryEntry {
  readonly owner: Service;
  readonly secret: string;
  readonly kept: string;
}

/**
 * A record's own facts (all but its service and secret, which the store keeps once per
 * service and as a key) as one JSON array text. The store keeps up to 10,000 records, one
 * per secret it served: one flat string (about 150 bytes for 130 characters) costs about
 * half of what an object with a field per fact and a string per text fact does. The first
 * element says whether the secret was served again since its record was placed where it is
 * (1 or 0, see StatusStore.forgetOne); the time is epoch ms (the text itself should it ever
 * not be an ISO 8601 time); an absent fact is null.
 */
function keep(entry: RecordFacts, atMs: number | undefined, servedAgain: boolean): string {
  return flat(
    JSON.stringify([
      servedAgain ? 1 : 0,
      atMs ?? timeOf(entry.at ?? ''),
      entry.task,
      entry.path,
      entry.field,
      entry.version,
      entry.leaseExpiresAt,
      entry.outcome,
      entry.code,
      entry.subcode,
      entry.error,
      entry.doNotReuse,
      entry.durationMs,
    ]),
  );
}

/**
 * The text as one string. JSON.stringify's text (and a concatenation's) is a tree of the
 * pieces it was built from, about 100 bytes more here; reading a character makes V8 flatten
 * it into one string, and the GC drops the tree.
 */
function flat(text: string): string {
  text.charCodeAt(0);
  return text;
}

/** Whether a kept record's secret was served again since the record was placed (keep()'s first element). */
function wasServedAgain(kept: string): boolean {
  return kept.startsWith('[1');
}

/** The same record, placed anew: not served again since. */
function placedAnew(kept: string): string {
  return flat(`[0${kept.slice(2)}`);
}

type Kept = [
  servedAgain: 0 | 1,
  at: number | string,
  task: string,
  path: string | null,
  field: string | null,
  version: number | null,
  leaseExpiresAt: string | null,
  outcome: 'ok' | 'error',
  code: string | null,
  subcode: ErrorSubcode | null,
  error: string | null,
  doNotReuse: boolean | null,
  durationMs: number,
];

/** The record as it was given (facts that were absent stay absent). */
function expand(owner: Service, secret: string, kept: string): FetchRecord {
  const [, at, task, path, field, version, leaseExpiresAt, outcome, code, subcode, error, doNotReuse, durationMs] =
    JSON.parse(kept) as Kept;
  const record: FetchRecord = {
    at: typeof at === 'number' ? new Date(at).toISOString() : at,
    service: owner.service,
    serviceId: owner.serviceId,
    task,
    secret,
    outcome,
    durationMs,
  };
  if (path !== null) record.path = path;
  if (field !== null) record.field = field;
  if (version !== null) record.version = version;
  if (leaseExpiresAt !== null) record.leaseExpiresAt = leaseExpiresAt;
  if (code !== null) record.code = code;
  if (subcode !== null) record.subcode = subcode;
  if (error !== null) record.error = error;
  if (doNotReuse !== null) record.doNotReuse = doNotReuse;
  return record;
}

export class StatusStore {
  /** The last historySize records, a ring: `next` is where the next one goes (the oldest, once full). */
  private readonly recent: HistoryEntry[] = [];
  private next = 0;
  /**
   * The last record per service (name and ID) and secret. Services are in order of last use,
   * the least recently served first. A service's secrets are in the order they were placed: a
   * secret served again keeps its place (moving it would grow the map's table to twice its
   * size, 0.45 MiB at 10,000 secrets), and is moved only when its turn to be forgotten comes.
   */
  private readonly latest = new Map<string, ServiceRecords>();
  private tracked = 0;
  /** The service of the last record: last in `latest` already. */
  private lastService: ServiceRecords | undefined;

  constructor(
    private readonly historySize = 200,
    /** Secrets whose last record is kept (at least one is). */
    private readonly maxTracked = 10_000,
  ) {}

  /** `atMs`: the record's time (epoch ms), when the caller has it as a number; else `entry.at` is read. */
  record(entry: RecordFacts, atMs?: number): void {
    const owner = this.serviceOf(entry.service, entry.serviceId);
    const known = owner.secrets.has(entry.secret);
    if (!known) {
      // Room is made before a new secret is placed, so that it is never the one forgotten.
      if (this.tracked >= this.maxTracked && this.tracked > 0) this.forgetOne();
      this.tracked++;
    }
    const kept = keep(entry, atMs, known);
    const history: HistoryEntry = { owner, secret: entry.secret, kept };
    // A ring, not push() + shift(): shift() moves the whole history on every request.
    if (this.recent.length < this.historySize) this.recent.push(history);
    else this.recent[this.next] = history;
    this.next = (this.next + 1) % this.historySize;
    owner.secrets.set(entry.secret, kept);
  }

  /**
   * At the bound, one secret of the least recently served service goes: the first placed
   * that was not served again since (a CLOCK's second chance, close to least recently served).
   * One that was is placed anew at the end, marked not served again, and the next is looked at.
   */
  private forgetOne(): void {
    const [serviceKey, oldest] = this.latest.entries().next().value as [string, ServiceRecords];
    for (;;) {
      const [secret, kept] = oldest.secrets.entries().next().value as [string, string];
      oldest.secrets.delete(secret);
      if (!wasServedAgain(kept)) break;
      oldest.secrets.set(secret, placedAnew(kept));
    }
    this.tracked--;
    // An emptied service goes, unless it is the one being served: its new secret comes next.
    if (oldest.secrets.size === 0 && oldest !== this.lastService) this.latest.delete(serviceKey);
  }

  /** The records of `service` and `serviceId`, moved to the end (most recently served) if not there already. */
  private serviceOf(service: string, serviceId: string): ServiceRecords {
    const last = this.lastService;
    // The usual case: tasks of one service arrive together.
    if (last && last.service === service && last.serviceId === serviceId) return last;
    // '\n' is in no service name or ID Docker gives.
    const key = `${serviceId}\n${service}`;
    let found = this.latest.get(key);
    if (found) this.latest.delete(key);
    else found = { service, serviceId, secrets: new Map() };
    this.latest.set(key, found);
    this.lastService = found;
    return found;
  }

  /** Oldest first. */
  recentRecords(): FetchRecord[] {
    const ring = this.recent;
    const ordered = ring.length < this.historySize ? ring : [...ring.slice(this.next), ...ring.slice(0, this.next)];
    return ordered.map((h) => expand(h.owner, h.secret, h.kept));
  }

  /** The last record of each secret, optionally only for one service (by name or ID). */
  latestRecords(service?: string): FetchRecord[] {
    const out: FetchRecord[] = [];
    for (const owner of this.latest.values()) {
      if (service && owner.service !== service && owner.serviceId !== service) continue;
      for (const [secret, kept] of owner.secrets) out.push(expand(owner, secret, kept));
    }
    return out;
  }
}
