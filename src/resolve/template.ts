// Path templates: {service}, {stack}, {secret}, {task}, {node}, filled from the request.
// A filled-in value is one path segment, checked like any other, so a service name can
// never walk out of its place in the path.
import { DsoError } from '../errors';

export const TEMPLATE_NAMES = ['service', 'stack', 'secret', 'task', 'node'] as const;
export type TemplateName = (typeof TEMPLATE_NAMES)[number];
export type TemplateContext = Partial<Record<TemplateName, string>>;

const SOURCES: Record<TemplateName, string> = {
  service: 'the service name',
  stack: 'the label com.docker.stack.namespace (set by docker stack deploy)',
  secret: 'the secret name',
  task: 'the task name',
  node: 'the node ID',
};

const PLACEHOLDER = /\{([^{}]*)\}/g;
const SAFE_VALUE = /^[A-Za-z0-9_.\-@+=:,~]+$/;

export function templateNames(text: string): string[] {
  if (!text.includes('{')) return [];
  return [...text.matchAll(PLACEHOLDER)].map((m) => m[1]);
}

/** Whether `text` has anything fillTemplate would look at ("{" or "}"): most paths have not. */
export function hasTemplate(text: string): boolean {
  return text.includes('{') || text.includes('}');
}

export function fillTemplate(text: string, context: TemplateContext, what: string): string {
  if (!hasTemplate(text)) return text;
  const filled = text.replace(PLACEHOLDER, (_all, name: string) => {
    if (!(TEMPLATE_NAMES as readonly string[]).includes(name)) {
      throw new DsoError(
        'ERR_TEMPLATE',
        `${what}: unknown template {${name.slice(0, 32)}}; known: ${TEMPLATE_NAMES.map((n) => `{${n}}`).join(', ')}`,
      );
    }
    const value = context[name as TemplateName];
    if (value === undefined || value === '') {
      throw new DsoError(
        'ERR_TEMPLATE',
        `${what}: {${name}} needs ${SOURCES[name as TemplateName]}, which this request does not carry`,
      );
    }
    if (!SAFE_VALUE.test(value) || value === '.' || value === '..') {
      throw new DsoError(
        'ERR_TEMPLATE',
        `${what}: the value for {${name}} has characters that are not allowed in a path segment`,
      );
    }
    return value;
  });
  if (/[{}]/.test(filled)) throw new DsoError('ERR_TEMPLATE', `${what}: unbalanced "{" or "}"`);
  return filled;
}
