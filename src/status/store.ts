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

/**
 * What the store keeps of a record: the same facts in fewer bytes (up to 10,000 are kept). The
 * time is a number, not its 24-character text; the duration whole microseconds (a small
 * integer, stored in the field itself); an error's three fields one object, absent when ok.
 */
class KeptRecord {
  /** Epoch ms; the text itself should it ever not be an ISO 8601 time (nothing is lost then). */
  readonly at: number | string;
  readonly service: string;
  readonly serviceId: string;
  readonly task: string;
  readonly secret: string;
  readonly path: string | undefined;
  readonly field: string | undefined;
  readonly version: number | undefined;
  readonly leaseExpiresAt: string | undefined;
  readonly ok: boolean;
  readonly doNotReuse: boolean | undefined;
  readonly durationUs: number;
  readonly problem: { code?: string; subcode?: ErrorSubcode; error?: string } | undefined;

  constructor(entry: RecordFacts, atMs?: number) {
    this.at = atMs ?? timeOf(entry.at ?? '');
    this.service = entry.service;
    this.serviceId = entry.serviceId;
    this.task = entry.task;
    this.secret = entry.secret;
    this.path = entry.path;
    this.field = entry.field;
    this.version = entry.version;
    this.leaseExpiresAt = entry.leaseExpiresAt;
    this.ok = entry.outcome === 'ok';
    this.doNotReuse = entry.doNotReuse;
    this.durationUs = Math.round(entry.durationMs * 1000);
    const { code, subcode, error } = entry;
    this.problem =
      code === undefined && subcode === undefined && error === undefined ? undefined : { code, subcode, error };
  }

  /** The record as it was given (fields that were absent stay absent). */
  expand(): FetchRecord {
    const record: FetchRecord = {
      at: typeof this.at === 'number' ? new Date(this.at).toISOString() : this.at,
      service: this.service,
      serviceId: this.serviceId,
      task: this.task,
      secret: this.secret,
      outcome: this.ok ? 'ok' : 'error',
      durationMs: this.durationUs / 1000,
    };
    if (this.path !== undefined) record.path = this.path;
    if (this.field !== undefined) record.field = this.field;
    if (this.version !== undefined) record.version = this.version;
    if (this.leaseExpiresAt !== undefined) record.leaseExpiresAt = this.leaseExpiresAt;
    if (this.problem?.code !== undefined) record.code = this.problem.code;
    if (this.problem?.subcode !== undefined) record.subcode = this.problem.subcode;
    if (this.problem?.error !== undefined) record.error = this.problem.error;
    if (this.doNotReuse !== undefined) record.doNotReuse = this.doNotReuse;
    return record;
  }
}

export class StatusStore {
  /** The last historySize records, a ring: `next` is where the next one goes (the oldest, once full). */
  private readonly recent: KeptRecord[] = [];
  private next = 0;
  /**
   * The last record per service (ID, else name) and secret: a map of secrets per service, so
   * that no record needs a key of its own (a service's records share the service's). Both
   * levels are in order of last use: the least recently served service comes first.
   */
  private readonly latest = new Map<string, Map<string, KeptRecord>>();
  private tracked = 0;
  /** The service of the last record: last in `latest` already. */
  private lastServiceKey: string | undefined;

  constructor(
    private readonly historySize = 200,
    private readonly maxTracked = 10_000,
  ) {}

  /** `atMs`: the record's time (epoch ms), when the caller has it as a number; else `entry.at` is read. */
  record(entry: RecordFacts, atMs?: number): void {
    const kept = new KeptRecord(entry, atMs);
    // A ring, not push() + shift(): shift() moves the whole history on every request.
    if (this.recent.length < this.historySize) this.recent.push(kept);
    else this.recent[this.next] = kept;
    this.next = (this.next + 1) % this.historySize;
    const serviceKey = entry.serviceId || entry.service;
    let secrets = this.latest.get(serviceKey);
    // Moved to the end (most recently served) unless it is there already, as for a service's tasks in a row.
    if (serviceKey !== this.lastServiceKey || !secrets) {
      if (secrets) this.latest.delete(serviceKey);
      else secrets = new Map();
      this.latest.set(serviceKey, secrets);
      this.lastServiceKey = serviceKey;
    }
    if (!secrets.delete(entry.secret)) this.tracked++;
    secrets.set(entry.secret, kept);
    // Beyond the bound, the least recently served secret of the least recently served service goes.
    if (this.tracked > this.maxTracked) {
      const [oldestKey, oldest] = this.latest.entries().next().value as [string, Map<string, KeptRecord>];
      oldest.delete(oldest.keys().next().value as string);
      if (oldest.size === 0) this.latest.delete(oldestKey);
      this.tracked--;
    }
  }

  /** Oldest first. */
  recentRecords(): FetchRecord[] {
    const ring = this.recent;
    const ordered = ring.length < this.historySize ? ring : [...ring.slice(this.next), ...ring.slice(0, this.next)];
    return ordered.map((r) => r.expand());
  }

  /** The last record of each secret, optionally only for one service (by name or ID). */
  latestRecords(service?: string): FetchRecord[] {
    const out: FetchRecord[] = [];
    for (const secrets of this.latest.values())
      for (const r of secrets.values())
        if (!service || r.service === service || r.serviceId === service) out.push(r.expand());
    return out;
  }
}
