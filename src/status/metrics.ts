// Prometheus metrics (off unless DSO_METRICS_ADDR is set). GetSecret outcomes and latency
// are noted as they happen and handed to prom-client in batches (at a scrape, or every
// OBSERVED_BATCH requests); the other figures are read from their owners at scrape time.
import * as http from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Logger } from '../log';

export interface MetricsSources {
  vaultRequests: () => { ok: number; failed: number };
  mergedReads: () => number;
  logins: () => number;
  tokenRenewals: () => number;
  /** Seconds left; undefined when not logged in; 0 for a token that never expires. */
  tokenTtlSeconds: () => number | undefined;
  leasesHeld: () => number;
  leaseRenewals: () => number;
  leaseRevocations: () => number;
}

/** A counter whose value is read from elsewhere when scraped. */
function readCounter(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/**
 * GetSecret observations noted before prom-client sees them. prom-client's inc() and
 * observe() hash their labels on every call: one request at a time, that is paid on every
 * request; a batch is paid once, with the code already warm.
 */
const OBSERVED_BATCH = 256;

const OUTCOME_LABELS = { ok: { outcome: 'ok' }, error: { outcome: 'error' } } as const;

export class Metrics {
  readonly registry = new Registry();
  private readonly getSecrets: Counter<'outcome' | 'code'>;
  private readonly latency: Histogram<'outcome'>;
  private readonly pendingOutcomes: Array<'ok' | 'error'> = [];
  private readonly pendingCodes: string[] = [];
  private readonly pendingSeconds: number[] = [];

  constructor(sources?: MetricsSources) {
    // Whichever of the two a scrape reads first takes the noted observations in.
    const flush = () => this.flush();
    this.getSecrets = new Counter({
      name: 'dso_getsecret_requests_total',
      help: 'GetSecret requests answered, by outcome and error code',
      labelNames: ['outcome', 'code'],
      registers: [this.registry],
      collect: flush,
    });
    this.latency = new Histogram({
      name: 'dso_getsecret_duration_seconds',
      help: 'Time to answer a GetSecret',
      labelNames: ['outcome'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [this.registry],
      collect: flush,
    });
    if (!sources) return;
    new Counter({
      name: 'dso_vault_requests_total',
      help: 'HTTP requests sent to Vault (every attempt, retries included), by result',
      labelNames: ['result'],
      registers: [this.registry],
      collect() {
        const counts = sources.vaultRequests();
        this.reset();
        this.inc({ result: 'ok' }, counts.ok);
        this.inc({ result: 'failed' }, counts.failed);
      },
    });
    readCounter(
      this.registry,
      'dso_vault_merged_reads_total',
      'Reads served by joining an identical read already in flight',
      sources.mergedReads,
    );
    readCounter(this.registry, 'dso_vault_logins_total', 'Successful Vault logins', sources.logins);
    readCounter(
      this.registry,
      'dso_vault_token_renewals_total',
      'Successful renewals of the Vault token',
      sources.tokenRenewals,
    );
    readCounter(this.registry, 'dso_lease_renewals_total', 'Successful lease renewals', sources.leaseRenewals);
    readCounter(
      this.registry,
      'dso_lease_revocations_total',
      'Leases revoked because their task or service was gone',
      sources.leaseRevocations,
    );
    new Gauge({
      name: 'dso_vault_token_ttl_seconds',
      help: 'Seconds left on the Vault token (0: never expires; absent: not logged in)',
      registers: [this.registry],
      collect() {
        const ttl = sources.tokenTtlSeconds();
        this.reset();
        if (ttl !== undefined) this.set(ttl);
      },
    });
    new Gauge({
      name: 'dso_leases_held',
      help: 'Leases of dynamic secrets the plugin holds and renews',
      registers: [this.registry],
      collect() {
        this.set(sources.leasesHeld());
      },
    });
  }

  observeGetSecret(outcome: 'ok' | 'error', code: string | undefined, seconds: number): void {
    this.pendingOutcomes.push(outcome);
    this.pendingCodes.push(code ?? '');
    this.pendingSeconds.push(seconds);
    if (this.pendingSeconds.length >= OBSERVED_BATCH) this.flush();
  }

  private flush(): void {
    const outcomes = this.pendingOutcomes;
    const codes = this.pendingCodes;
    for (let i = 0; i < outcomes.length; i++) this.latency.observe(OUTCOME_LABELS[outcomes[i]], this.pendingSeconds[i]);
    // The counter once per run of requests with the same outcome and code: most of a batch is one run.
    for (let start = 0, i = 1; i <= outcomes.length; i++) {
      if (i < outcomes.length && outcomes[i] === outcomes[start] && codes[i] === codes[start]) continue;
      this.getSecrets.inc({ outcome: outcomes[start], code: codes[start] }, i - start);
      start = i;
    }
    outcomes.length = 0;
    this.pendingCodes.length = 0;
    this.pendingSeconds.length = 0;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** Serves GET /metrics on `address` (host:port). */
export async function serveMetrics(metrics: Metrics, address: string, logger: Logger): Promise<http.Server> {
  const cut = address.lastIndexOf(':');
  const host = address.slice(0, cut).replace(/^\[|\]$/g, '') || '0.0.0.0';
  const port = Number(address.slice(cut + 1));
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404).end('not found: GET /metrics\n');
      return;
    }
    metrics.text().then(
      (text) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(text),
      () => res.writeHead(500).end('metrics unavailable\n'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  logger.info('metrics listening', { address: `${host}:${port}` });
  return server;
}
