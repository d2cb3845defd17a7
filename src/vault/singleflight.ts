// Identical concurrent calls share one promise: a herd of tasks asking for the same
// secret costs Vault one request.
export class SingleFlight<T> {
  private readonly inflight = new Map<string, Promise<T>>();
  merged = 0;

  run(key: string, work: () => Promise<T>): Promise<T> {
    const running = this.inflight.get(key);
    if (running) {
      this.merged++;
      return running;
    }
    const promise = work().finally(() => this.inflight.delete(key));
    this.inflight.set(key, promise);
    return promise;
  }
}
