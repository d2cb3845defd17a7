// GetSecret request -> what to read: labels, templates filled from the request, and the
// early path-policy check, all before anything is asked of Vault.
import { DsoError } from '../errors';
import { parseLabels, SecretSpec } from './labels';
import { PathPolicy, requesterTemplates } from './policy';
import { checkPath } from './reference';
import { fillTemplate, hasTemplate, TemplateContext } from './template';

export const STACK_LABEL = 'com.docker.stack.namespace';

/** The parts of Docker's GetSecret request that say which secret a workload wants. */
export interface RequestFacts {
  SecretName?: string;
  SecretLabels?: Record<string, string> | null;
  ServiceID?: string;
  ServiceName?: string;
  ServiceLabels?: Record<string, string> | null;
  TaskID?: string;
  TaskName?: string;
  NodeID?: string;
}

export interface ReadPlan extends SecretSpec {
  /** The path with templates filled, as written (KV v2 CLI form is completed later). */
  path: string;
  params: Record<string, string>;
  context: TemplateContext;
  /**
   * Why the answer depends on who asks ({stack} in the path, in a parameter or in
   * DSO_ALLOWED_PATHS...), or undefined when every requester gets the same answer. Such an
   * answer must never be shared: Docker hands a shared copy to any task of the node.
   */
  requesterDependence?: string;
}

export function requestContext(request: RequestFacts): TemplateContext {
  return {
    service: request.ServiceName || undefined,
    // The service's own label: a service of stack B that names stack A's secret is still B.
    stack: request.ServiceLabels?.[STACK_LABEL] || undefined,
    secret: request.SecretName || undefined,
    task: request.TaskName || undefined,
    node: request.NodeID || undefined,
  };
}

export class Resolver {
  constructor(
    readonly policy: PathPolicy,
    private readonly pathTemplate?: string,
  ) {}

  plan(request: RequestFacts): ReadPlan {
    const spec = parseLabels(request.SecretLabels ?? {}, this.pathTemplate);
    const context = requestContext(request);
    const path = fillTemplate(spec.ref.path, context, 'path');
    // The path as written was checked with the labels; a filled one is checked again.
    if (path !== spec.ref.path) checkPath(path, 'path');
    // auth/ and sys/ are Vault's own API (logins, tokens, configuration), never a secret.
    const slash = path.indexOf('/');
    const first = slash < 0 ? path : path.slice(0, slash);
    if (first === 'auth' || first === 'sys') {
      throw Object.assign(
        new DsoError('ERR_PATH_REFUSED', `${path} is part of Vault's own API (${first}/), not a secret DSO serves`),
        { source: { path, field: spec.ref.field } },
      );
    }
    const params: Record<string, string> = {};
    for (const [key, value] of Object.entries(spec.ref.params))
      params[key] = fillTemplate(value, context, `parameter ${key}`);
    try {
      this.policy.check(path, context, true);
    } catch (err) {
      if (err instanceof DsoError) err.source = { path, field: spec.ref.field };
      throw err;
    }
    // Written out: V8 copies a spread object and then adds properties to it in microseconds, not nanoseconds.
    return {
      ref: spec.ref,
      version: spec.version,
      format: spec.format,
      reuse: spec.reuse,
      rotate: spec.rotate,
      path,
      params,
      context,
      requesterDependence: this.dependence(spec, request),
    };
  }

  private dependence(spec: SecretSpec, request: RequestFacts): string | undefined {
    const texts = [spec.ref.path, ...Object.values(spec.ref.params)];
    // Most references hold no template at all: then only the policy can make the answer depend on who asks.
    if (!texts.some(hasTemplate)) return this.policy.requesterDependence;
    const labels = request.SecretLabels ?? {};
    const where =
      labels['dso.ref'] === undefined && labels['dso.path'] === undefined
        ? 'DSO_PATH_TEMPLATE'
        : "the secret's reference";
    const inRef = [...new Set(texts.flatMap(requesterTemplates))];
    const reasons = [
      inRef.length ? `${inRef.join(', ')} in ${where}` : undefined,
      this.policy.requesterDependence,
    ].filter((r): r is string => r !== undefined);
    return reasons.length ? reasons.join('; ') : undefined;
  }
}
