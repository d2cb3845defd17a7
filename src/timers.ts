// setTimeout turns any delay over 2^31-1 ms (about 24.8 days) into 1 ms: a long TTL must
// not become a renewal loop. A capped timer just fires early and its owner schedules again.
export const MAX_TIMER_MS = 2 ** 31 - 1;

export function timerDelay(ms: number): number {
  return Math.min(Math.max(0, ms), MAX_TIMER_MS);
}

/**
 * A background loop: `pass` first after `firstMs`, then `nextMs()` after each pass has ended, so
 * passes never overlap; it never keeps the process alive on its own. Returns what stops it.
 */
export function repeat(pass: () => Promise<unknown>, firstMs: number, nextMs: () => number): () => void {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const arm = (ms: number) => {
    timer = setTimeout(() => void pass().finally(() => stopped || arm(nextMs())), timerDelay(ms));
    timer.unref();
  };
  arm(firstMs);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
