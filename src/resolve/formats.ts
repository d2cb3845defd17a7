// Turns the data Vault returned into the bytes of the secret file.
import { DsoError } from '../errors';

export const FORMATS = ['raw', 'json', 'env', 'base64', 'pem'] as const;
export type Format = (typeof FORMATS)[number];

/** Docker refuses secret values outside 1..511,999 bytes. */
export const MAX_VALUE_BYTES = 511_999;

const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

function text(value: unknown): string {
  if (typeof value === 'string') return value;
  // A list of strings (a PKI ca_chain) reads best one per line.
  if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string')) return value.join('\n');
  if (value === null || value === undefined) return '';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

function pick(data: Record<string, unknown>, field: string, where: string): unknown {
  if (Object.prototype.hasOwnProperty.call(data, field)) return data[field];
  const names = Object.keys(data).sort();
  const known = names.length
    ? names
        .slice(0, 50)
        .map((n) => JSON.stringify(n))
        .join(', ')
    : 'none';
  throw new DsoError('ERR_FIELD_MISSING', `field "${field}" not found in ${where}; fields there: ${known}`);
}

function envLines(data: unknown, where: string): string {
  if (!data || typeof data !== 'object' || Array.isArray(data)) {
    throw new DsoError('ERR_FORMAT', `dso.format=env needs an object of keys and values at ${where}`);
  }
  const lines: string[] = [];
  for (const key of Object.keys(data).sort()) {
    if (!ENV_KEY.test(key))
      throw new DsoError(
        'ERR_FORMAT',
        `dso.format=env: key "${key.slice(0, 64)}" in ${where} is not a valid variable name`,
      );
    const value = text((data as Record<string, unknown>)[key]);
    if (/[\r\n\0]/.test(value))
      throw new DsoError(
        'ERR_FORMAT',
        `dso.format=env: the value of ${key} in ${where} spans several lines; read it with its own secret instead`,
      );
    lines.push(`${key}=${value}`);
  }
  return lines.join('\n') + (lines.length ? '\n' : '');
}

/** Key, certificate and chain in one file, as servers such as HAProxy want them. */
function pemBundle(data: Record<string, unknown>, where: string): string {
  const key = data.private_key;
  const certificate = data.certificate;
  if (typeof key !== 'string' || typeof certificate !== 'string') {
    throw new DsoError(
      'ERR_FORMAT',
      `dso.format=pem needs private_key and certificate in ${where} (a PKI issue endpoint)`,
    );
  }
  const chain =
    Array.isArray(data.ca_chain) && data.ca_chain.length
      ? data.ca_chain
      : typeof data.issuing_ca === 'string'
        ? [data.issuing_ca]
        : [];
  return (
    [key, certificate, ...chain.filter((c): c is string => typeof c === 'string')].map((p) => p.trim()).join('\n') +
    '\n'
  );
}

/** The secret file's bytes; `where` names the Vault path for error messages. */
export function render(
  data: Record<string, unknown>,
  field: string | undefined,
  format: Format,
  where: string,
): Buffer {
  if (format === 'pem' && field !== undefined)
    throw new DsoError('ERR_FORMAT', 'dso.format=pem takes no field: it bundles private_key, certificate and ca_chain');
  const selected = field === undefined ? data : pick(data, field, where);
  let bytes: Buffer;
  switch (format) {
    case 'raw':
      bytes = Buffer.from(text(selected), 'utf8');
      break;
    case 'json':
      bytes = Buffer.from(JSON.stringify(selected), 'utf8');
      break;
    case 'env':
      bytes = Buffer.from(envLines(selected, field ? `${where}#${field}` : where), 'utf8');
      break;
    case 'pem':
      bytes = Buffer.from(pemBundle(data, where), 'utf8');
      break;
    case 'base64': {
      const encoded = text(selected).replace(/\s+/g, '');
      if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(encoded) || encoded.length % 4 === 1) {
        throw new DsoError('ERR_FORMAT', `dso.format=base64: field "${field}" in ${where} is not valid base64`);
      }
      bytes = Buffer.from(encoded, encoded.includes('-') || encoded.includes('_') ? 'base64url' : 'base64');
      break;
    }
  }
  checkSize(bytes, field ? `${where}#${field}` : where);
  return bytes;
}

export function checkSize(bytes: Buffer, where: string): void {
  if (bytes.length === 0)
    throw new DsoError('ERR_VALUE_EMPTY', `the value at ${where} is empty; Docker cannot mount an empty secret`);
  if (bytes.length > MAX_VALUE_BYTES) {
    throw new DsoError(
      'ERR_VALUE_TOO_LARGE',
      `the value at ${where} is ${bytes.length} bytes; Docker accepts at most ${MAX_VALUE_BYTES}`,
    );
  }
}
