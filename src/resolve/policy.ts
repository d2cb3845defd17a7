// DSO_ALLOWED_PATHS: which Vault paths the plugin may read for a request. Patterns use
// the globs of Vault's own policies: `*` at any place matches any run of characters
// (slashes included), `+` matches exactly one path segment; templates are filled from the
// request first, so `secret/data/{stack}/*` confines each stack to its own subtree.
// Matching takes time linear in the path (./glob.ts), however many `*` a pattern has.
import { DsoError } from '../errors';
import { compileGlob, Glob, matchGlob } from './glob';
import { hasTemplate, templateNames, TemplateContext } from './template';

/** Templates whose value depends on who asks (the secret's own name does not). */
export const REQUESTER_TEMPLATES = ['service', 'stack', 'task', 'node'] as const;

/** The requester templates `text` uses, e.g. ['{stack}']. */
export function requesterTemplates(text: string): string[] {
  return templateNames(text)
    .filter((n) => (REQUESTER_TEMPLATES as readonly string[]).includes(n))
    .map((n) => `{${n}}`);
}

export class PathPolicy {
  /**
   * Why the policy's answer depends on who asks (a pattern with {stack}, {service}, {task}
   * or {node}), or undefined when it is the same for every requester.
   */
  readonly requesterDependence: string | undefined;
  /** Each pattern compiled once when it holds no template (most do), else compiled per request. */
  private readonly globs: Array<Glob | string>;

  constructor(private readonly patterns: string[]) {
    const used = [...new Set(patterns.flatMap(requesterTemplates))];
    this.requesterDependence = used.length ? `${used.join(', ')} in DSO_ALLOWED_PATHS` : undefined;
    this.globs = patterns
      .map((p) => p.replace(/^\/+/, ''))
      .map((p) => (hasTemplate(p) ? p : compileGlob(p, {}, 'DSO_ALLOWED_PATHS')));
  }

  get restricted(): boolean {
    return this.patterns.length > 0;
  }

  /** The patterns, templates filled for this request; a pattern whose template cannot be filled allows nothing. */
  private compiled(context: TemplateContext): Glob[] {
    const out: Glob[] = [];
    for (const glob of this.globs) {
      if (typeof glob !== 'string') {
        out.push(glob);
        continue;
      }
      try {
        out.push(compileGlob(glob, context, 'DSO_ALLOWED_PATHS'));
      } catch {
        // e.g. {stack} for a service that is not part of a stack: this pattern does not apply.
      }
    }
    return out;
  }

  allows(path: string, context: TemplateContext): boolean {
    if (!this.restricted) return true;
    return this.compiled(context).some((glob) => matchGlob(glob, path));
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
    return candidates.some((candidate) => patterns.some((glob) => matchGlob(glob, candidate)));
  }

  check(path: string, context: TemplateContext, early = false): void {
    if (early ? this.mayAllow(path, context) : this.allows(path, context)) return;
    throw new DsoError(
      'ERR_PATH_REFUSED',
      `path ${path} is not allowed by DSO_ALLOWED_PATHS (${this.patterns.join(', ')}); add ` +
        `a matching pattern or change the secret's dso.ref`,
    );
  }
}
