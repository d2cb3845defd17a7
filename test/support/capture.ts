// Everything the plugin says during the tests (log lines, replies) is kept here, and every
// secret value, token and secret id a test uses is registered, so the leak scan at the end
// of the suite can prove none of them ever appeared.
import { PassThrough } from 'node:stream';

const captured: string[] = [];
const secrets = new Set<string>();

/** Registers a secret (value, token, secret id, JWT) that must never show up in output. */
export function secret<T extends string>(value: T): T {
  if (value.length >= 6) secrets.add(value);
  return value;
}

export function capture(text: string): void {
  captured.push(text);
}

/** Keeps a plugin reply for the scan, less its Value: delivering the value is its job. */
export function captureReply(text: string): void {
  try {
    const { Value: _value, ...rest } = JSON.parse(text) as Record<string, unknown>;
    captured.push(JSON.stringify(rest));
  } catch {
    captured.push(text);
  }
}

/** A stream for createLogger that keeps every line for the leak scan and for assertions. */
export function captureStream(lines: string[] = []): PassThrough {
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    captured.push(text);
    lines.push(...text.split('\n').filter((l) => l.trim() !== ''));
  });
  return stream;
}

export function registeredSecrets(): string[] {
  return [...secrets];
}

export function capturedText(): string[] {
  return captured;
}

/**
 * Forms a secret could take in output: as is, base64, JSON-escaped, and escaped twice
 * (dockerd quotes each line of a plugin's JSON log inside its own `msg="..."`).
 */
export function leakForms(value: string): string[] {
  const escaped = JSON.stringify(value).slice(1, -1);
  return [value, Buffer.from(value).toString('base64'), escaped, JSON.stringify(escaped).slice(1, -1)];
}
