// Small helpers shared by the unit tests (not a test file itself).
import { expect } from 'chai';
import { PassThrough } from 'node:stream';
import { DsoError } from '../../src/errors';
import { createLogger, Logger } from '../../src/log';

/** The DsoError `fn` throws; fails the test when it throws nothing or something else. */
export function thrown(fn: () => unknown): DsoError {
  try {
    fn();
  } catch (err) {
    expect(err, `expected a DsoError, got ${String(err)}`).to.be.instanceOf(DsoError);
    return err as DsoError;
  }
  return expect.fail('expected a DsoError to be thrown');
}

/** The DsoError a promise rejects with. */
export async function rejected(promise: Promise<unknown>): Promise<DsoError> {
  try {
    await promise;
  } catch (err) {
    expect(err, `expected a DsoError, got ${String(err)}`).to.be.instanceOf(DsoError);
    return err as DsoError;
  }
  return expect.fail('expected the promise to reject with a DsoError');
}

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
