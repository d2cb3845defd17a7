// The one renewal timer (token, kept tokens, leases): when it fires, with global timers
// captured so the delays it asks for can be checked without waiting for them.
import { expect } from 'chai';
import { MAX_TIMER_MS } from '../../src/timers';
import { RenewalTimer } from '../../src/vault/renewal';

describe('renewal timer', () => {
  const real = { setTimeout: globalThis.setTimeout, clearTimeout: globalThis.clearTimeout };
  let armed: Array<{ fn: () => void; ms: number; cleared: boolean }>;

  beforeEach(() => {
    armed = [];
    const fake = (fn: () => void, ms: number) => {
      const entry = { fn, ms, cleared: false };
      armed.push(entry);
      return { unref: () => undefined, entry } as unknown as NodeJS.Timeout;
    };
    globalThis.setTimeout = fake as unknown as typeof setTimeout;
    globalThis.clearTimeout = ((t: { entry?: { cleared: boolean } } | undefined) => {
      if (t?.entry) t.entry.cleared = true;
    }) as typeof clearTimeout;
  });

  afterEach(() => Object.assign(globalThis, real));

  const NOW = 1_000_000;

  it('fires at two thirds of the time left, within the jitter, never sooner than the minimum', () => {
    const low = new RenewalTimer(
      () => NOW,
      () => 0,
    );
    const high = new RenewalTimer(
      () => NOW,
      () => 1,
    );
    low.arm(NOW + 30_000, () => undefined);
    high.arm(NOW + 30_000, () => undefined);
    expect(armed.map((a) => a.ms)).to.deep.equal([18_000, 22_000]);
    new RenewalTimer(
      () => NOW,
      () => 0.5,
    ).arm(NOW + 30_000, () => undefined, { jitter: false, minDelayMs: 500 });
    new RenewalTimer(
      () => NOW,
      () => 0.5,
    ).arm(NOW + 10, () => undefined, { minDelayMs: 500 });
    expect(armed.slice(2).map((a) => a.ms)).to.deep.equal([20_000, 500]);
  });

  it('never arms for a lifetime without end; re-arming replaces the earlier timer', () => {
    const timer = new RenewalTimer(
      () => NOW,
      () => 0.5,
    );
    timer.arm(Infinity, () => undefined);
    expect(armed).to.have.length(0);
    timer.arm(NOW + 3_000, () => undefined);
    timer.after(1_000, () => undefined);
    expect(armed.map((a) => [a.ms, a.cleared])).to.deep.equal([
      [2_000, true],
      [1_000, false],
    ]);
  });

  it('a due time beyond the timer limit wakes up at the limit and arms again, instead of renewing early', () => {
    let now = NOW;
    let renewed = 0;
    const timer = new RenewalTimer(
      () => now,
      () => 0.5,
    );
    const days = 40 * 24 * 3600 * 1000; // two thirds of it is past the limit
    timer.arm(NOW + days, () => renewed++);
    expect(armed[0].ms).to.equal(MAX_TIMER_MS);
    now += MAX_TIMER_MS;
    armed[0].fn();
    expect(renewed, 'not due yet').to.equal(0);
    expect(armed[1].ms).to.be.closeTo(((days - MAX_TIMER_MS) * 2) / 3, 1);
    armed[1].fn();
    expect(renewed).to.equal(1);
  });
});
