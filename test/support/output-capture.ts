// Loaded by mocha before any test (--require): everything this test process prints,
// reporter output included, is also kept for the leak scan that runs last.
import { capture } from './capture';

for (const stream of [process.stdout, process.stderr]) {
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    capture(typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString('utf8') : String(chunk));
    return write(chunk, ...rest);
  }) as typeof stream.write;
}
