// The least-privilege Vault policies the README documents, one per feature. Tests give
// the plugin exactly these (for their own paths), and a unit test checks that the README
// shows the same text, so the documentation cannot drift from what is tested.

/** Serving KV secrets under `kvPath` (a KV v2 data path or a KV v1 path, with globs). */
export function staticReadPolicy(kvPath: string): string {
  return `path "${kvPath}" {\n  capabilities = ["read"]\n}`;
}

/** Dynamic secrets: a leased read (`read`) or an issue-on-write endpoint (`update`). */
export function dynamicPolicy(readPaths: string[], issuePaths: string[] = []): string {
  return [
    ...readPaths.map((p) => `path "${p}" {\n  capabilities = ["read"]\n}`),
    ...issuePaths.map((p) => `path "${p}" {\n  capabilities = ["update"]\n}`),
    leasePolicy(),
  ].join('\n');
}

/** Renewing and revoking the leases of dynamic secrets. */
export function leasePolicy(): string {
  return 'path "sys/leases/renew" {\n  capabilities = ["update"]\n}\npath "sys/leases/revoke" {\n  capabilities = ["update"]\n}';
}

/** The README's examples, exactly as printed there. */
export const README_POLICIES = {
  static: staticReadPolicy('secret/data/app/*'),
  dynamic: dynamicPolicy(['database/creds/app'], ['pki/issue/web']),
};
