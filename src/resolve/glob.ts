// Path globs as Vault policies write them, matched in time linear in the path: `*` any run
// of characters (slashes included), `+` one or more characters of one segment, templates
// filled from the request as literal text. A regular expression built from `*` -> `.*`
// backtracks: `secret/*/*/*/db` against a 1 KiB label took seconds. Here the pattern is a
// small automaton whose states are bits, and the path is read once, left to right, moving
// every reached state at once with a few word operations per character (bit-parallel
// "shift-and"): path length x (pattern length / 32) steps, whatever the input.
import { fillTemplate, TemplateContext } from './template';

const SLASH = 47;

export interface Glob {
  /** Number of 32-bit words per state set (states 0..m, m = accepting). */
  readonly words: number;
  /** Bit of the accepting state. */
  readonly accept: { word: number; bit: number };
  /** States that read one character other than "/" and move on (the first of `+`). */
  readonly one: Int32Array;
  /** States that read characters other than "/" and stay (the rest of `+`). */
  readonly loop: Int32Array;
  /** States that read any character and stay (`*`). */
  readonly star: Int32Array;
  /** States that may be passed without reading (LOOP and STAR: they match the empty run). */
  readonly skip: Int32Array;
  /** Per character code, the literal states that read it and move on. */
  readonly literal: Map<number, Int32Array>;
  /** The state set before reading anything. */
  readonly start: Int32Array;
}

const set = (bits: Int32Array, state: number) => {
  bits[state >>> 5] |= 1 << (state & 31);
};

/** Adds to `bits` every state reachable without reading (past LOOP and STAR states). */
function close(bits: Int32Array, skip: Int32Array): void {
  for (;;) {
    let changed = false;
    let carry = 0;
    for (let w = 0; w < bits.length; w++) {
      const passable = bits[w] & skip[w];
      const widened = bits[w] | (passable << 1) | carry;
      carry = passable >>> 31;
      if (widened !== bits[w]) {
        bits[w] = widened;
        changed = true;
      }
    }
    if (!changed) return;
  }
}

/**
 * Compiles a pattern for one request. Globs are read from the pattern as written, before
 * templates are filled: a `+` or `*` inside a filled-in value (a stack name) is a literal
 * character, never a wildcard. Throws ERR_TEMPLATE when a template cannot be filled.
 */
export function compileGlob(pattern: string, context: TemplateContext, what: string): Glob {
  type Kind = 'lit' | 'one' | 'loop' | 'star';
  const tokens: Array<{ kind: Kind; code: number }> = [];
  const literal = (text: string) => {
    for (let i = 0; i < text.length; i++) tokens.push({ kind: 'lit', code: text.charCodeAt(i) });
  };
  for (const part of pattern.split(/(\{[^{}]*\}|\*|\+)/)) {
    if (part === '*') {
      // `**` is the same as `*`.
      if (tokens[tokens.length - 1]?.kind !== 'star') tokens.push({ kind: 'star', code: 0 });
    } else if (part === '+') tokens.push({ kind: 'one', code: 0 }, { kind: 'loop', code: 0 });
    else if (part.startsWith('{')) literal(fillTemplate(part, context, what));
    else literal(part);
  }
  const m = tokens.length;
  const words = (m >>> 5) + 1;
  const bits = () => new Int32Array(words);
  const glob = {
    words,
    accept: { word: m >>> 5, bit: 1 << (m & 31) },
    one: bits(),
    loop: bits(),
    star: bits(),
    skip: bits(),
    literal: new Map<number, Int32Array>(),
    start: bits(),
  };
  tokens.forEach((token, state) => {
    if (token.kind === 'lit') {
      let mask = glob.literal.get(token.code);
      if (!mask) glob.literal.set(token.code, (mask = bits()));
      set(mask, state);
    } else {
      set(glob[token.kind], state);
      if (token.kind !== 'one') set(glob.skip, state);
    }
  });
  set(glob.start, 0);
  close(glob.start, glob.skip);
  return glob;
}

/** Whether the whole of `path` matches `glob`. */
export function matchGlob(glob: Glob, path: string): boolean {
  const { words, one, loop, star, skip, literal } = glob;
  let current = Int32Array.from(glob.start);
  let next = new Int32Array(words);
  const none = new Int32Array(words);
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    const lit = literal.get(c) ?? none;
    const segment = c !== SLASH;
    let carry = 0;
    let any = 0;
    for (let w = 0; w < words; w++) {
      const d = current[w];
      // Move on: a literal that reads c, or the first of `+` when c is not "/".
      const advance = d & (lit[w] | (segment ? one[w] : 0));
      // Stay: `*` always, the rest of `+` while inside a segment.
      const stay = d & (star[w] | (segment ? loop[w] : 0));
      next[w] = (advance << 1) | carry | stay;
      carry = advance >>> 31;
      any |= next[w];
    }
    if (any === 0) return false;
    close(next, skip);
    const swap = current;
    current = next;
    next = swap;
  }
  return (current[glob.accept.word] & glob.accept.bit) !== 0;
}
