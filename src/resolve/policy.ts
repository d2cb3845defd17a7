// DSO_ALLOWED_PATHS: which Vault paths the plugin may read for a request. Patterns use
// the globs of Vault's own policies: `*` at any place matches any run of characters
// (slashes included), `+` matches exactly one path segment; templates are filled from the
// request first, so `secret/data/{stack}/*` confines each stack to its own subtree.
import { DsoError } from '../errors';
import { fillTemplate, TemplateContext } from './template';

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Globs are read from the pattern as written, before templates are filled: a `+` or `*`
 * inside a filled-in value (a stack name) is a literal character, never a wildcard.
 */
function patternToRegExp(pattern: string, context: TemplateContext): RegExp {
  const parts = pattern.split(/(\{[^{}]*\}|\*|\+)/).map((part) => {
    if (part === '*') return '.*';
    if (part === '+') return '[^/]+';
    if (part.startsWith('{')) return escapeRegExp(fillTemplate(part, context, 'DSO_ALLOWED_PATHS'));
    return escapeRegExp(part);
  });
  return new RegExp(`^${parts.join('')}$`);
}

export class PathPolicy {
  constructor(private readonly patterns: string[]) {}

  get restricted(): boolean {
    return this.patterns.length > 0;
  }

  /** The patterns, templates filled for this request; a pattern whose template cannot be filled allows nothing. */
  private compiled(context: TemplateContext): RegExp[] {
    const out: RegExp[] = [];
    for (const pattern of this.patterns) {
      try {
        out.push(patternToRegExp(pattern.replace(/^\/+/, ''), context));
      } catch {
        // e.g. {stack} for a service that is not part of a stack: this pattern does not apply.
      }
    }
    return out;
  }

  allows(path: string, context: TemplateContext): boolean {
    if (!this.restricted) return true;
    return this.compiled(context).some((re) => re.test(path));
  }

  /**
   * Could `path`, as written (maybe in KV v2 CLI form, without `data/`), become an allowed
   * API path? Used to refuse early, before Vault is asked anything about it.
   */
  mayAllow(path: string, context: TemplateContext): boolean {
    if (!this.restricted) return true;
    const segments = path.split('/');
    const candidates = [path];
    // KV v2 inserts data/ after the mount, unless the path already has data/ there.
    for (let i = 1; i < segments.length; i++) {
      if (segments[i] !== 'data') candidates.push([...segments.slice(0, i), 'data', ...segments.slice(i)].join('/'));
    }
    const patterns = this.compiled(context);
    return candidates.some((candidate) => patterns.some((re) => re.test(candidate)));
  }

  check(path: string, context: TemplateContext, early = false): void {
    if (early ? this.mayAllow(path, context) : this.allows(path, context)) return;
    throw new DsoError(
      'ERR_PATH_REFUSED',
      `path ${path} is not allowed by DSO_ALLOWED_PATHS (${this.patterns.join(', ')}); add a matching pattern or change the secret's dso.ref`,
    );
  }
}
