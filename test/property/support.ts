// Shared by the property suites (not a test file itself): the run count, an independent
// reference implementation of DSO_ALLOWED_PATHS, path invariants, generators of hostile
// references and request facts, and a keep-alive HTTP client on a Unix socket.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import type { RequestListener } from 'node:http';

/** Generated cases per property (issue 8 asks for at least 10,000 in `make test`). */
export const RUNS = 10_000;

// ---------------------------------------------------------------------------------------
// Reference implementation of the documented path rules, written without looking at how
// src/resolve/policy.ts builds its regular expressions: patterns are tokenised and matched
// by dynamic programming. README: "`*` matches anything (slashes too), `+` one path
// segment, templates are filled per request"; a filled-in value is one path segment.

export type Context = Partial<Record<'service' | 'stack' | 'secret' | 'task' | 'node', string>>;
const NAMES = ['service', 'stack', 'secret', 'task', 'node'];
const VALUE_CHARS = new Set('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-@+=:,~');

/** A template value the documentation accepts: one segment of plain characters, not "." or "..". */
export function refSafeValue(value: string | undefined): value is string {
  if (value === undefined || value === '' || value === '.' || value === '..') return false;
  for (const ch of value) if (!VALUE_CHARS.has(ch)) return false;
  return true;
}

type Token = { kind: 'lit'; text: string } | { kind: 'star' } | { kind: 'plus' };

/** The pattern's tokens for this request, or undefined when the pattern cannot apply. */
export function refCompile(pattern: string, ctx: Context): Token[] | undefined {
  let text = pattern;
  while (text.startsWith('/')) text = text.slice(1);
  const tokens: Token[] = [];
  const literal = (s: string) => {
    const last = tokens[tokens.length - 1];
    if (last && last.kind === 'lit') last.text += s;
    else tokens.push({ kind: 'lit', text: s });
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '*') tokens.push({ kind: 'star' });
    else if (c === '+') tokens.push({ kind: 'plus' });
    else if (c === '}') return undefined;
    else if (c === '{') {
      const end = text.indexOf('}', i);
      if (end < 0) return undefined;
      const name = text.slice(i + 1, end);
      if (!NAMES.includes(name)) return undefined;
      const value = ctx[name as keyof Context];
      if (!refSafeValue(value)) return undefined;
      literal(value); // a value is always literal text, whatever characters it holds
      i = end;
    } else literal(c);
  }
  return tokens;
}

function matchTokens(tokens: Token[], subject: string): boolean {
  const memo = new Map<number, boolean>();
  const go = (t: number, s: number): boolean => {
    const key = t * (subject.length + 1) + s;
    const known = memo.get(key);
    if (known !== undefined) return known;
    let result = false;
    if (t === tokens.length) result = s === subject.length;
    else {
      const token = tokens[t];
      if (token.kind === 'lit') result = subject.startsWith(token.text, s) && go(t + 1, s + token.text.length);
      else if (token.kind === 'star') {
        for (let e = s; e <= subject.length && !result; e++) result = go(t + 1, e);
      } else {
        for (let e = s + 1; e <= subject.length && subject[e - 1] !== '/' && !result; e++) result = go(t + 1, e);
      }
    }
    memo.set(key, result);
    return result;
  };
  return go(0, 0);
}

/**
 * The same rules as `matchTokens`, bottom-up over a table instead of memoised recursion,
 * for the long (1 KiB) subjects of the timing property: row t holds, for each position s,
 * whether tokens t.. match subject s..; O(tokens x length) time.
 */
export function refTableMatch(pattern: string, ctx: Context, subject: string): boolean | undefined {
  const compiled = refCompile(pattern, ctx);
  if (compiled === undefined) return undefined;
  const chars: Array<string | 'star' | 'plus'> = [];
  for (const t of compiled) {
    if (t.kind === 'lit')
      for (let i = 0; i < t.text.length; i++) chars.push(t.text[i]); // UTF-16 units, as the subject is indexed
    else chars.push(t.kind);
  }
  const n = subject.length;
  let below = new Uint8Array(n + 2);
  below[n] = 1; // no tokens left: only the end of the subject matches
  for (let t = chars.length - 1; t >= 0; t--) {
    const row = new Uint8Array(n + 2);
    const token = chars[t];
    for (let s = n; s >= 0; s--) {
      if (token === 'star') row[s] = below[s] || (s < n && row[s + 1]) ? 1 : 0;
      // `+`: one non-slash character, then either the rest of the pattern or more of `+`.
      else if (token === 'plus') row[s] = s < n && subject[s] !== '/' && (below[s + 1] || row[s + 1]) ? 1 : 0;
      else row[s] = s < n && subject[s] === token && below[s + 1] ? 1 : 0;
    }
    below = row;
  }
  return below[0] === 1;
}

/** Does an API path match one of the patterns for this request (reference semantics)? */
export function refAllows(patterns: string[], apiPath: string, ctx: Context): boolean {
  if (patterns.length === 0) return true;
  return patterns.some((p) => {
    const tokens = refCompile(p, ctx);
    return tokens !== undefined && matchTokens(tokens, apiPath);
  });
}

/**
 * The documented early check: the path as written, or its KV v2 form with `data/` inserted
 * at a segment boundary, except before a segment that already is `data` (KV v2 keeps such
 * a path as it is).
 */
export function refMayAllow(patterns: string[], written: string, ctx: Context): boolean {
  if (refAllows(patterns, written, ctx)) return true;
  const segments = written.split('/');
  for (let i = 1; i < segments.length; i++) {
    if (segments[i] === 'data') continue;
    if (refAllows(patterns, [...segments.slice(0, i), 'data', ...segments.slice(i)].join('/'), ctx)) return true;
  }
  return false;
}

/** What is wrong with a path the plugin accepted (undefined: nothing). */
export function pathDefect(p: string): string | undefined {
  if (p.length === 0) return 'empty path';
  if (p.startsWith('/')) return 'leading /';
  if (p.includes('%')) return '%';
  if (p.includes('\\')) return 'backslash';
  if (/[\u0000-\u001f\u007f-\u009f\s]/.test(p)) return 'control character or whitespace';
  if (/[^\x20-\x7e]/.test(p)) return 'non-ASCII character';
  if (/[?#*]/.test(p)) return '? # or *';
  for (const segment of p.split('/')) {
    if (segment === '') return 'empty segment';
    if (segment === '.' || segment === '..') return `"${segment}" segment`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Generators.

/** Path pieces that attack or confuse: traversal in every spelling, templates, globs, unicode. */
export const TRICKY_SEGMENTS = [
  '..',
  '.',
  '...',
  '%2e%2e',
  '%2E%2E',
  '.%2e',
  '%2e',
  '%2f',
  '..%2f',
  '%252e%252e',
  '',
  ' ',
  '\t',
  '\n',
  '\u0000',
  '\u007f',
  '\u2024\u2024',
  '\uff0e\uff0e',
  '\u2025',
  '\u002e\u0301',
  '..\\',
  'a\\b',
  '\\',
  '~',
  '~root',
  'a b',
  'é',
  '\u202e',
  '\ud800',
  'data',
  'metadata',
  '*',
  '+',
  '?',
  '#',
  '&',
  '=',
  '@',
  ':',
  '{',
  '}',
  '{}',
  '{stack',
  'stack}',
  '{{stack}}',
  '{unknown}',
  '{Stack}',
  '{stack}',
  '{service}',
  '{secret}',
  '{task}',
  '{node}',
  '{stack}-{service}',
  'pre{stack}',
  '{stack}..',
];

const WORDS = ['secret', 'data', 'a', 'b', 'alpha', 'beta', 'app', 'db', 'x'];

/** A small alphabet, so that generated paths and patterns collide often. */
export const word = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...WORDS) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom(...'ab.-_@+=:,~'), minLength: 1, maxLength: 4 }) },
);

export const segment = fc.oneof(
  { weight: 5, arbitrary: word },
  { weight: 3, arbitrary: fc.constantFrom(...TRICKY_SEGMENTS) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 6 }) },
);

/** A path as someone might write it, slashes doubled, leading or trailing, backslashes. */
export const writtenPath = fc
  .tuple(
    fc.constantFrom('', '', '', '/', '//', './', '../'),
    fc.array(fc.tuple(segment, fc.constantFrom('/', '/', '/', '/', '//', '\\', '/./', '/../')), {
      minLength: 1,
      maxLength: 6,
    }),
    fc.constantFrom('', '', '', '/', '/.', '/..'),
  )
  .map(([lead, parts, tail]) => lead + parts.map(([s, sep], i) => (i === 0 ? s : sep + s)).join('') + tail);

export const queryPart = fc.oneof(
  { weight: 6, arbitrary: fc.constant('') },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '?common_name={service}.example.com',
      '?a=%2e%2e',
      '?%zz=1',
      '?x=%E0%A4%A',
      '?__proto__=x',
      '?ttl=1h&',
      '?=&=&',
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }).map((s) => `?${s}`) },
);

export const fieldPart = fc.oneof(
  { weight: 3, arbitrary: fc.constant('') },
  { weight: 3, arbitrary: fc.constantFrom('#password', '#user', '#', '#a/b', '#..', '#\u0000', `#${'f'.repeat(300)}`) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 8 }).map((s) => `#${s}`) },
);

export const scheme = fc.constantFrom(
  'dso://',
  'dso://',
  'dso://',
  'dso://',
  'dso:///',
  'dso:/',
  'DSO://',
  'dso:',
  '',
  'vault://',
);

export const referenceText = fc.tuple(scheme, writtenPath, queryPart, fieldPart).map(([s, p, q, f]) => s + p + q + f);

/** Template values: real names, traversal, slashes, globs, empty, unicode. */
export function contextValue(withPlus: boolean) {
  const pool = [
    'alpha',
    'beta',
    'a',
    'b',
    'web',
    'data',
    'a.b',
    '..',
    '.',
    '...',
    'a/b',
    '/',
    '',
    ' ',
    '%2e%2e',
    '*',
    '\u2024',
    'é',
    '~',
    'x:y',
    '{stack}',
    'a\\b',
  ];
  const plus = ['+', 'a+', '+b', 'al+'];
  const chars = withPlus ? 'ab.-_@=:,~+' : 'ab.-_@=:,~';
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...pool, ...(withPlus ? plus : [])) },
    { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom(...chars), minLength: 1, maxLength: 4 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 4 }).filter((s) => withPlus || !s.includes('+')) },
  );
}

/** One allowed-path pattern: literals, `*`, `+`, templates. */
export const patternText = fc
  .tuple(
    fc.constantFrom('', '', '', '/'),
    fc.array(
      fc.oneof(
        { weight: 4, arbitrary: word.filter((w) => !w.includes('+')) },
        { weight: 2, arbitrary: fc.constantFrom('*', '+', '{stack}', '{service}', '{secret}') },
        {
          weight: 1,
          arbitrary: fc.constantFrom(
            'a*',
            '*b',
            '{stack}-*',
            '{stack}*',
            'x+',
            '{task}',
            '{node}',
            '{unknown}',
            '{stack',
            'a.b',
            '*/*',
          ),
        },
      ),
      { minLength: 1, maxLength: 5 },
    ),
  )
  .map(([lead, parts]) => lead + parts.join('/'));

// ---------------------------------------------------------------------------------------
// A keep-alive HTTP client over a Unix socket, the way Docker talks to a plugin.

export interface Served {
  socket: string;
  agent: http.Agent;
  close(): Promise<void>;
}

export async function serveOnSocket(handler: RequestListener): Promise<Served> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dso-property-'));
  const socket = path.join(dir, 'p.sock');
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  return {
    socket,
    agent,
    async close() {
      agent.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  ms: number;
  /** Set when the connection failed instead of answering. */
  error?: string;
}

/** One POST; resolves with the reply, with `error` set when the reply never came within `limitMs`. */
export function post(
  served: Served,
  route: string,
  body: Buffer,
  headers: Record<string, string | number>,
  limitMs: number,
): Promise<Reply> {
  const started = Date.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (reply: Omit<Reply, 'ms'>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ ...reply, ms: Date.now() - started });
    };
    const req = http.request(
      { socketPath: served.socket, agent: served.agent, method: 'POST', path: route, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          finish({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', (err) => finish({ status: 0, headers: {}, text: '', error: String(err) }));
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      finish({ status: 0, headers: {}, text: '', error: `no reply within ${limitMs} ms` });
    }, limitMs);
    req.on('error', (err: NodeJS.ErrnoException) =>
      finish({ status: 0, headers: {}, text: '', error: err.code ?? String(err) }),
    );
    req.end(body);
  });
}

/** Counts uncaught exceptions and unhandled rejections while a property runs. */
export function watchProcess(): { problems: string[]; stop(): void } {
  const problems: string[] = [];
  const onException = (err: Error) => problems.push(`uncaughtException: ${err?.stack ?? err}`);
  const onRejection = (reason: unknown) => problems.push(`unhandledRejection: ${(reason as Error)?.stack ?? reason}`);
  process.on('uncaughtException', onException);
  process.on('unhandledRejection', onRejection);
  return {
    problems,
    stop() {
      process.off('uncaughtException', onException);
      process.off('unhandledRejection', onRejection);
    },
  };
}
