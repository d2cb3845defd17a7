// Identical concurrent calls share one promise: a herd of tasks asking for the same
// secret costs Vault one request. With `reuseMs`, the successful result of a call that
// was shared (a herd is under way) also serves identical calls that start within that many
// ms after it settled: a herd reaches the plugin over the time it takes to accept and
// parse it (about half a second for 1,000 calls on two cores), much longer than one read
// takes. A call nobody shared is never reused, so calls one after the other each reach
// Vault; failures are never reused; results are let go once their time is up (one timer,
// whatever the number of keys). A caller that joined a flight which then ran out of its
// own deadline (Vault slow when it started, fast again now) is not handed that timeout
// while it still has time of its own: it tries again.
interface Flight<T> {
  promise: Promise<T>;
  shared: boolean;
  settledAt?: number;
  /** When the caller who started it gives up (epoch ms), if it said. */
  deadline?: number;
}

const DEADLINE_SLACK_MS = 10;

export class SingleFlight<T> {
  private readonly flights = new Map<string, Flight<T>>();
  private sweeper?: NodeJS.Timeout;
  merged = 0;

  constructor(private readonly reuseMs = 0) {}

  /** `deadline`: when this caller gives up (epoch ms); `work` must honour it. */
  run(key: string, work: () => Promise<T>, deadline?: number): Promise<T> {
    const found = this.flights.get(key);
    if (found && (found.settledAt === undefined || Date.now() - found.settledAt < this.reuseMs)) {
      this.merged++;
      found.shared = true;
      if (deadline === undefined || found.deadline === undefined || found.deadline >= deadline) return found.promise;
      const started = found.deadline;
      return found.promise.catch((err: unknown) => {
        // Failed because the flight's own time ran out, while this caller still has some.
        // A timer set for a deadline may fire when Date.now() still reads a millisecond or two
        // before it (the clocks round apart): within DEADLINE_SLACK_MS it counts as reached.
        if (Date.now() >= started - DEADLINE_SLACK_MS && Date.now() < deadline) return this.run(key, work, deadline);
        throw err;
      });
    }
    const flight: Flight<T> = { promise: work(), shared: false, deadline };
    this.flights.set(key, flight);
    const forget = () => {
      if (this.flights.get(key) === flight) this.flights.delete(key);
    };
    flight.promise.then(() => {
      if (this.reuseMs <= 0 || !flight.shared) return forget();
      flight.settledAt = Date.now();
      this.sweeper ??= setTimeout(() => this.sweep(), this.reuseMs).unref();
    }, forget);
    return flight.promise;
  }

  private sweep(): void {
    this.sweeper = undefined;
    const now = Date.now();
    let waiting = false;
    for (const [key, flight] of this.flights) {
      if (flight.settledAt === undefined) continue;
      if (now - flight.settledAt >= this.reuseMs) this.flights.delete(key);
      else waiting = true;
    }
    if (waiting) this.sweeper = setTimeout(() => this.sweep(), this.reuseMs).unref();
  }
}
