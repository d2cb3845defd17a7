// setTimeout turns any delay over 2^31-1 ms (about 24.8 days) into 1 ms: a long TTL must
// not become a renewal loop. A capped timer just fires early and its owner schedules again.
export const MAX_TIMER_MS = 2 ** 31 - 1;

export function timerDelay(ms: number): number {
  return Math.min(Math.max(0, ms), MAX_TIMER_MS);
}
