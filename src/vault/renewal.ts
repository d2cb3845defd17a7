// The one renewal timer of the plugin's token, the tokens kept for their leases and every
// lease, after Vault's LifetimeWatcher: the next renewal at about two thirds of what
// remains of a lifetime, with jitter so a herd of leases issued together does not renew
// together; a due time beyond setTimeout's limit (about 24.8 days, which it would turn into
// 1 ms) re-arms at that limit instead of renewing early. What a renewal does, and when to
// stop (max TTL reached, owner gone), is the owner's: it arms the timer again or not.
import { MAX_TIMER_MS } from '../timers';

const REFRESH_FRACTION = 2 / 3;
const JITTER = 0.1;

export interface ArmOptions {
  /** Never sooner than this (ms). */
  minDelayMs?: number;
  /** ±10 % around two thirds; off for a fixed point (the tokens kept for leases). */
  jitter?: boolean;
}

export class RenewalTimer {
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {}

  /** Calls `renew` at about two thirds of the time left until `expiresAt` (epoch ms); never for Infinity. */
  arm(expiresAt: number, renew: () => void, options: ArmOptions = {}): void {
    this.clear();
    if (expiresAt === Infinity) return;
    const jitter = options.jitter === false ? 1 : 1 + (this.random() * 2 - 1) * JITTER;
    const delay = Math.max(options.minDelayMs ?? 100, (expiresAt - this.now()) * REFRESH_FRACTION * jitter);
    // Far off: wake up at the timer's limit and work out the due time again from there.
    this.start(delay > MAX_TIMER_MS ? () => this.arm(expiresAt, renew, options) : renew, Math.min(delay, MAX_TIMER_MS));
  }

  /** Calls `fn` once after `ms` (a retry soon), replacing what was armed. */
  after(ms: number, fn: () => void): void {
    this.clear();
    this.start(fn, ms);
  }

  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private start(fn: () => void, ms: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      fn();
    }, ms);
    // A pending renewal never keeps the process alive on its own.
    this.timer.unref();
  }
}
