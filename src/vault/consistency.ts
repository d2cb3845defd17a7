// Read consistency across an OpenBao HA cluster. OpenBao 2.x standbys answer reads from their
// own copy of the raft log, which trails the active node: right after a write (a login, a new
// lease, a secret's new version) a standby can still answer with the older state, and a
// client that moves to another node (failover, a load balancer) could see a secret go back to
// an older version. OpenBao 2.7 stamps every answer with X-Vault-Index (the storage index it
// reflects, base64 JSON {cluster, value}); a request that carries one with
// `X-Vault-Inconsistent: forward-active-node` is answered by a standby only once it has
// applied that index, and forwarded to the active node before that. DSO sends the highest
// index it has seen, so what it read or wrote once is never answered from older state.
// Servers that send no index (HashiCorp Vault, older OpenBao) get neither header.

const INDEX_HEADER = 'X-Vault-Index';
const INCONSISTENT_HEADER = 'X-Vault-Inconsistent';
const FORWARD_WHEN_BEHIND = 'forward-active-node';

interface Seen {
  raw: string;
  cluster: string;
  /** The raft index; undefined when the value is not a plain number (another storage backend). */
  value?: bigint;
}

/** Decodes an OpenBao index; anything else (Vault Enterprise's own replication state) is not one. */
function decode(raw: string): Seen | undefined {
  if (raw.length > 4096) return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(raw, 'base64').toString('utf8')) as unknown;
    if (typeof parsed !== 'object' || parsed === null) return undefined;
    const { cluster, value } = parsed as { cluster?: unknown; value?: unknown };
    if (typeof cluster !== 'string' || typeof value !== 'string') return undefined;
    return { raw, cluster, value: /^\d{1,20}$/.test(value) ? BigInt(value) : undefined };
  } catch {
    return undefined;
  }
}

/** The highest storage index seen in any answer, to send with every request. */
export class StorageIndex {
  private seen?: Seen;

  /** Called with each answer's X-Vault-Index; a lower index (a standby that trails) is ignored. */
  learn(raw: string | undefined): void {
    // The common case, on every read: the index has not moved.
    if (raw === undefined || raw === this.seen?.raw) return;
    const next = decode(raw);
    if (!next) return;
    const current = this.seen;
    // Another cluster (VAULT_ADDR naming a second one) or a value that is not a number: the newest answer wins.
    if (
      current &&
      current.cluster === next.cluster &&
      current.value !== undefined &&
      next.value !== undefined &&
      next.value <= current.value
    )
      return;
    this.seen = next;
  }

  /** Adds the headers that keep a trailing standby from answering with older state. */
  stamp(headers: Record<string, string>): void {
    if (!this.seen) return;
    headers[INDEX_HEADER] = this.seen.raw;
    headers[INCONSISTENT_HEADER] = FORWARD_WHEN_BEHIND;
  }
}
