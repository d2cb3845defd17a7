// `dso://<path>[?<params>][#<field>]`: the one way a secret names what to read.
import { DsoError } from '../errors';

export interface Reference {
  /** Vault path as written (may hold {templates}); no leading or trailing slash. */
  path: string;
  field?: string;
  /** Parameters for engines that issue on write (PKI); values may hold templates. */
  params: Record<string, string>;
}

export const SCHEME = 'dso://';

// A segment is a run of these; '%', '\', '?', '#', whitespace and control characters never.
const SEGMENT = /^[A-Za-z0-9_.\-@+=:,~{}]+$/;
const FIELD = /^[^\u0000-\u001f\u007f]+$/;
/** A whole path of SEGMENTs, none of them "." or "..": what the check below lets through, at once. */
const WELL_FORMED = /^[A-Za-z0-9_.\-@+=:,~{}]+(?:\/[A-Za-z0-9_.\-@+=:,~{}]+)*$/;
const DOT_SEGMENT = /(?:^|\/)\.\.?(?:\/|$)/;

/** Checks a path (before or after template filling) segment by segment. */
export function checkPath(path: string, what: string): void {
  // The usual case in one pass; anything else goes through the checks that name the problem.
  if (path.length <= 1024 && WELL_FORMED.test(path) && !DOT_SEGMENT.test(path)) return;
  if (path.length === 0) throw new DsoError('ERR_REFERENCE', `${what}: the path is empty`);
  if (path.length > 1024) throw new DsoError('ERR_REFERENCE', `${what}: the path is longer than 1024 characters`);
  if (path.startsWith('/'))
    throw new DsoError(
      'ERR_REFERENCE',
      `${what}: the path must not start with "/" (write it as Vault's API does, e.g. secret/data/app/db)`,
    );
  for (const segment of path.split('/')) {
    if (segment === '')
      throw new DsoError('ERR_REFERENCE', `${what}: the path has an empty segment ("//" or a trailing "/")`);
    if (segment === '.' || segment === '..')
      throw new DsoError('ERR_REFERENCE', `${what}: the path must not contain "." or ".." segments`);
    if (!SEGMENT.test(segment)) {
      throw new DsoError(
        'ERR_REFERENCE',
        `${what}: the path segment "${segment.slice(0, 64)}" has a character that is not ` +
          `allowed (allowed: letters, digits and _ . - @ + = : , ~)`,
      );
    }
  }
}

export function checkField(field: string, what: string): void {
  if (field.length === 0 || field.length > 256 || !FIELD.test(field)) {
    throw new DsoError('ERR_REFERENCE', `${what}: the field name must be 1 to 256 printable characters`);
  }
}

export function parseReference(text: string, what = 'dso.ref'): Reference {
  if (!text.startsWith(SCHEME)) {
    throw new DsoError('ERR_REFERENCE', `${what} must start with ${SCHEME}, e.g. dso://secret/data/app/db#password`);
  }
  let rest = text.slice(SCHEME.length);
  let field: string | undefined;
  const hash = rest.indexOf('#');
  if (hash >= 0) {
    field = rest.slice(hash + 1);
    rest = rest.slice(0, hash);
    checkField(field, what);
  }
  const params: Record<string, string> = {};
  const question = rest.indexOf('?');
  if (question >= 0) {
    const query = rest.slice(question + 1);
    rest = rest.slice(0, question);
    for (const pair of query.split('&')) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      const key = eq >= 0 ? pair.slice(0, eq) : pair;
      const value = eq >= 0 ? pair.slice(eq + 1) : '';
      try {
        params[decodeURIComponent(key)] = decodeURIComponent(value);
      } catch {
        throw new DsoError(
          'ERR_REFERENCE',
          `${what}: the parameter "${key.slice(0, 64)}" is not correctly percent-encoded`,
        );
      }
    }
  }
  checkPath(rest, what);
  return { path: rest, field, params };
}
