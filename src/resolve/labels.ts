// A secret's `dso.*` labels, checked and turned into what to read and how to render it.
import { FORMATS, Format } from './formats';
import { DsoError } from '../errors';
import { checkField, checkPath, parseReference, Reference } from './reference';

export interface SecretSpec {
  ref: Reference;
  version?: number;
  format: Format;
  /** Set only when the label says so; the engine decides the default. */
  reuse?: boolean;
  rotate?: boolean;
}

export const LABELS = [
  'dso.ref',
  'dso.path',
  'dso.field',
  'dso.version',
  'dso.format',
  'dso.reuse',
  'dso.rotate',
] as const;

function bool(labels: Record<string, string>, name: string): boolean | undefined {
  const value = labels[name];
  if (value === undefined) return undefined;
  if (value === 'true' || value === 'false') return value === 'true';
  throw new DsoError('ERR_LABELS', `label ${name} must be true or false`);
}

/**
 * Reads the labels; `pathTemplate` (DSO_PATH_TEMPLATE) is used when neither dso.ref nor
 * dso.path is set.
 */
export function parseLabels(labels: Record<string, string>, pathTemplate?: string): SecretSpec {
  for (const name of Object.keys(labels)) {
    if (name.startsWith('dso.') && !(LABELS as readonly string[]).includes(name)) {
      throw new DsoError('ERR_LABELS', `unknown label ${name.slice(0, 64)}; DSO reads ${LABELS.join(', ')}`);
    }
  }
  const refLabel = labels['dso.ref'];
  const pathLabel = labels['dso.path'];
  const fieldLabel = labels['dso.field'];
  if (refLabel !== undefined && (pathLabel !== undefined || fieldLabel !== undefined)) {
    throw new DsoError('ERR_LABELS', 'use either dso.ref or dso.path/dso.field, not both');
  }

  let ref: Reference;
  if (refLabel !== undefined) {
    ref = parseReference(refLabel, 'label dso.ref');
  } else if (pathLabel !== undefined) {
    const path = pathLabel.replace(/^dso:\/\//, '');
    checkPath(path, 'label dso.path');
    if (fieldLabel !== undefined) checkField(fieldLabel, 'label dso.field');
    ref = { path, field: fieldLabel, params: {} };
  } else if (pathTemplate) {
    ref = pathTemplate.startsWith('dso://')
      ? parseReference(pathTemplate, 'DSO_PATH_TEMPLATE')
      : parseReference(`dso://${pathTemplate}`, 'DSO_PATH_TEMPLATE');
    if (fieldLabel !== undefined) {
      checkField(fieldLabel, 'label dso.field');
      ref = { ...ref, field: fieldLabel };
    }
  } else {
    throw new DsoError(
      'ERR_LABELS',
      'the secret names no Vault path: add the label dso.ref (e.g. dso://secret/data/app/db#password), or dso.path and dso.field, or set DSO_PATH_TEMPLATE',
    );
  }

  let version: number | undefined;
  if (labels['dso.version'] !== undefined) {
    const text = labels['dso.version'];
    if (!/^[1-9]\d{0,9}$/.test(text))
      throw new DsoError('ERR_LABELS', 'label dso.version must be a positive whole number (a KV v2 version)');
    version = Number(text);
  }

  const formatLabel = labels['dso.format'];
  if (formatLabel !== undefined && !(FORMATS as readonly string[]).includes(formatLabel)) {
    throw new DsoError('ERR_LABELS', `label dso.format must be one of ${FORMATS.join(', ')}`);
  }
  const format: Format = (formatLabel as Format | undefined) ?? (ref.field !== undefined ? 'raw' : 'json');
  if ((format === 'raw' || format === 'base64') && ref.field === undefined) {
    throw new DsoError('ERR_LABELS', `dso.format=${format} needs a field: add #<field> to dso.ref or set dso.field`);
  }

  return { ref, version, format, reuse: bool(labels, 'dso.reuse'), rotate: bool(labels, 'dso.rotate') };
}
