// Small helpers shared by the unit tests (not a test file itself).
import { expect } from 'chai';
import { PassThrough } from 'node:stream';
import { DsoError } from '../../src/errors';
import { createLogger, Logger } from '../../src/log';

/** The error of class `type` that `fn` throws; fails the test when it throws nothing or something else. */
export function thrownBy<E extends Error>(type: abstract new (...args: never[]) => E, fn: () => unknown): E {
  try {
    fn();
  } catch (err) {
    expect(err, `expected a ${type.name}, got ${String(err)}`).to.be.instanceOf(type);
    return err as E;
  }
  return expect.fail(`expected a ${type.name} to be thrown`);
}

/** The error of class `type` that `promise` rejects with; fails the test otherwise. */
export async function rejectedWith<E extends Error>(
  type: abstract new (...args: never[]) => E,
  promise: Promise<unknown>,
): Promise<E> {
  try {
    await promise;
  } catch (err) {
    expect(err, `expected a ${type.name}, got ${String(err)}`).to.be.instanceOf(type);
    return err as E;
  }
  return expect.fail(`expected the promise to reject with a ${type.name}`);
}

/** The DsoError `fn` throws. */
export const thrown = (fn: () => unknown): DsoError => thrownBy(DsoError, fn);

/** The DsoError a promise rejects with. */
export const rejected = (promise: Promise<unknown>): Promise<DsoError> => rejectedWith(DsoError, promise);

/** A logger whose JSON lines are kept, parsed, for assertions. */
export function capturingLogger(level: 'error' | 'warn' | 'info' | 'debug' = 'debug'): {
  logger: Logger;
  lines: string[];
  records: () => Record<string, unknown>[];
} {
  const lines: string[] = [];
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) =>
    lines.push(
      ...chunk
        .toString('utf8')
        .split('\n')
        .filter((l) => l.trim() !== ''),
    ),
  );
  const logger = createLogger(level, stream);
  return { logger, lines, records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A promise and its resolve/reject, to control when a fake answers. */
export function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (err: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export { silentLogger as silent } from '../../src/log';
