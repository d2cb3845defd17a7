// Which references may write. A query string turns a read into a POST whose body the
// secret's author picks, so `pki/issue/web?ttl=87600h`, `transit/decrypt/...` or
// `database/rotate-root/...` would be whatever a label says. A write is allowed only
// (a) on the issue and sign endpoints of PKI and SSH mounts, told by the mount type Vault
// reports, with only those engines' certificate parameters, or (b) where the operator's
// DSO_ALLOWED_WRITES names the path and every parameter. Everything else with a query
// string is refused here, after the mount lookup and before Vault sees the write.
import type { MountInfo } from '../engines/mounts';
import { DsoError } from '../errors';
import { compileGlob, matchGlob } from './glob';
import { requesterTemplates } from './policy';
import type { TemplateContext } from './template';

/** One DSO_ALLOWED_WRITES entry: `pattern?name,name`. */
export interface WriteRule {
  pattern: string;
  params: string[];
}

/** PKI certificate parameters (Vault API docs, "Generate certificate and key" / "Sign certificate"). */
const PKI_ISSUE = [
  'common_name',
  'alt_names',
  'ip_sans',
  'uri_sans',
  'other_sans',
  'ttl',
  'format',
  'private_key_format',
  'exclude_cn_from_sans',
  'remove_roots_from_chain',
  'user_ids',
];
/** SSH certificate parameters (Vault API docs, "Sign SSH key" / "Generate SSH key pair and sign"). */
const SSH_COMMON = ['valid_principals', 'cert_type', 'key_id', 'ttl'];

interface BuiltIn {
  type: string;
  /** Glob on the path below the mount. */
  below: string;
  params: readonly string[];
}

/**
 * Issue-style endpoints that create a fresh credential on POST and are bounded by the
 * role they name (allowed domains, principals, max TTL). Not listed, so only through
 * DSO_ALLOWED_WRITES: `pki/sign-verbatim` (ignores the role's restrictions), SSH
 * `critical_options`/`extensions` (maps that can widen what a certificate may do).
 */
export const BUILT_IN_WRITES: readonly BuiltIn[] = [
  { type: 'pki', below: 'issue/+', params: PKI_ISSUE },
  { type: 'pki', below: 'issuer/+/issue/+', params: PKI_ISSUE },
  { type: 'pki', below: 'sign/+', params: [...PKI_ISSUE, 'csr'] },
  { type: 'pki', below: 'issuer/+/sign/+', params: [...PKI_ISSUE, 'csr'] },
  { type: 'ssh', below: 'sign/+', params: ['public_key', ...SSH_COMMON] },
  { type: 'ssh', below: 'issue/+', params: ['key_type', 'key_bits', ...SSH_COMMON] },
];

const BUILT_IN_GLOBS = BUILT_IN_WRITES.map((b) => ({ ...b, glob: compileGlob(b.below, {}, 'built-in write rule') }));

/** Mount types with built-in write paths (PKI, SSH). */
const WRITING_TYPES = new Set(BUILT_IN_WRITES.map((b) => b.type));

const ENTRY = /^([^\s;?]+)\?([A-Za-z0-9_.-]+(?:,[A-Za-z0-9_.-]+)*)$/;

/** Reads DSO_ALLOWED_WRITES: `pattern?name,name; pattern?name`. Throws on a malformed entry. */
export function parseAllowedWrites(text: string | undefined): WriteRule[] {
  const rules: WriteRule[] = [];
  for (const entry of (text ?? '')
    .split(';')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const match = ENTRY.exec(entry);
    if (!match)
      throw new DsoError('ERR_SETTINGS', 'DSO_ALLOWED_WRITES has an entry that is not PATTERN?name[,name...]');
    rules.push({ pattern: match[1].replace(/^\/+/, ''), params: match[2].split(',') });
  }
  return rules;
}

/** Parameter names for a message: short, and only the characters a DSO_ALLOWED_WRITES name may hold. */
const shown = (names: string[]) => names.map((n) => n.slice(0, 64).replace(/[^A-Za-z0-9_.-]/g, '?')).join(',');

export class WritePolicy {
  /** Why the decision depends on who asks (a template such as {stack} in a pattern). */
  readonly requesterDependence: string | undefined;

  constructor(private readonly rules: WriteRule[] = []) {
    const used = [...new Set(rules.flatMap((r) => requesterTemplates(r.pattern)))];
    this.requesterDependence = used.length ? `${used.join(', ')} in DSO_ALLOWED_WRITES` : undefined;
  }

  /**
   * Whether serving `apiPath` is a write (POST with `params` as the body) or a read, or a
   * refusal (ERR_WRITE_REFUSED naming DSO_ALLOWED_WRITES) when it would be a write that
   * nothing allows.
   */
  decide(
    apiPath: string,
    mount: MountInfo,
    params: Record<string, string>,
    context: TemplateContext,
  ): 'read' | 'write' {
    // The usual case, a read without parameters from a mount type that has no built-in writes,
    // is decided before anything is built for the others.
    let parameters = false;
    for (const _name in params) {
      parameters = true;
      break;
    }
    if (!parameters && !WRITING_TYPES.has(mount.type)) return 'read';
    const names = Object.keys(params).sort();
    const below = `${apiPath}/`.startsWith(mount.path) ? apiPath.slice(mount.path.length) : undefined;
    const builtIn =
      below === undefined ? undefined : BUILT_IN_GLOBS.find((b) => b.type === mount.type && matchGlob(b.glob, below));
    if (!builtIn && names.length === 0) return 'read';
    if (mount.kvVersion !== undefined) {
      throw new DsoError(
        'ERR_WRITE_REFUSED',
        `${apiPath} is a KV secret, which DSO only reads: remove the query string ` +
          `(?${shown(names)}) from the reference`,
      );
    }
    if (builtIn && names.every((n) => builtIn.params.includes(n))) return 'write';
    if (this.allowedByRule(apiPath, names, context)) return 'write';
    const entry = `${apiPath}?${shown(names)}`;
    if (builtIn) {
      const extra = names.filter((n) => !builtIn.params.includes(n));
      throw new DsoError(
        'ERR_WRITE_REFUSED',
        `the reference writes to ${apiPath} with parameter(s) ${shown(extra)}, which ` +
          `${mount.type} ${builtIn.below.split('/')[0]} paths do not take by default (they take ` +
          `${builtIn.params.join(', ')}); remove them from the query string, or allow them in ` +
          `DSO_ALLOWED_WRITES (e.g. ${entry})`,
      );
    }
    throw new DsoError(
      'ERR_WRITE_REFUSED',
      `the reference's query string (?${shown(names)}) makes it a write to ${apiPath}, and ` +
        `DSO_ALLOWED_WRITES does not allow that write with these parameters; remove the query ` +
        `string, or add ${entry} to DSO_ALLOWED_WRITES`,
    );
  }

  private allowedByRule(apiPath: string, names: string[], context: TemplateContext): boolean {
    return this.rules.some((rule) => {
      if (!names.every((n) => rule.params.includes(n))) return false;
      try {
        return matchGlob(compileGlob(rule.pattern, context, 'DSO_ALLOWED_WRITES'), apiPath);
      } catch {
        return false; // a template this request cannot fill: the rule does not apply
      }
    });
  }
}
