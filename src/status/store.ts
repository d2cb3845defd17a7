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

export class StatusStore {
  /** The last historySize records, a ring: `next` is where the next one goes (the oldest, once full). */
  private readonly recent: FetchRecord[] = [];
  private next = 0;
  private readonly latest = new Map<string, FetchRecord>();

  constructor(
    private readonly historySize = 200,
    private readonly maxTracked = 10_000,
  ) {}

  record(entry: FetchRecord): void {
    // A ring, not push() + shift(): shift() moves the whole history on every request.
    if (this.recent.length < this.historySize) this.recent.push(entry);
    else this.recent[this.next] = entry;
    this.next = (this.next + 1) % this.historySize;
    const key = `${entry.serviceId || entry.service}\u0000${entry.secret}`;
    this.latest.delete(key);
    this.latest.set(key, entry);
    // Oldest first in a Map's order: forget the least recently served beyond the bound.
    if (this.latest.size > this.maxTracked) this.latest.delete(this.latest.keys().next().value as string);
  }

  /** Oldest first. */
  recentRecords(): FetchRecord[] {
    if (this.recent.length < this.historySize) return [...this.recent];
    return [...this.recent.slice(this.next), ...this.recent.slice(0, this.next)];
  }

  /** The last record of each secret, optionally only for one service (by name or ID). */
  latestRecords(service?: string): FetchRecord[] {
    const all = [...this.latest.values()];
    return service ? all.filter((r) => r.service === service || r.serviceId === service) : all;
  }
}
