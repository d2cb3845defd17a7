// The floor for any plugin written in Node.js on this machine: the least a secrets driver can
// do per GetSecret, and nothing more. It reads Docker's body, takes the path and field from
// the dso.ref label, makes the same KV v2 read with a keep-alive agent, and replies with the
// base64 value. No validation, no logging, no framework, no failover, no policy.
// The benchmark runs it beside the plugin so the plugin's cost can be split into "one more
// hop" (which no implementation avoids) and "the plugin's own work".
//
// Usage (started by bench/run.ts): node build/bench/floor-proxy.js SOCKET VAULT_PORT TOKEN_FILE
import * as fs from 'node:fs';
import * as http from 'node:http';

const [socket, port, tokenFile] = process.argv.slice(2);
const token = fs.readFileSync(tokenFile, 'utf8').trim();
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function fail(res: http.ServerResponse, status: number, message: string): void {
  res
    .writeHead(status, { 'Content-Type': 'application/json' })
    .end(JSON.stringify({ Err: message, DoNotReuse: false }));
}

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let ref: string;
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { SecretLabels?: Record<string, string> };
      ref = body.SecretLabels?.['dso.ref'] ?? '';
    } catch {
      return fail(res, 400, 'bad body');
    }
    const m = /^dso:\/\/([^#]+)#(.+)$/.exec(ref);
    if (!m) return fail(res, 400, 'bad ref');
    const [, apiPath, field] = m;
    const vreq = http.request(
      {
        host: '127.0.0.1',
        port: Number(port),
        path: `/v1/${apiPath}`,
        agent,
        headers: { 'X-Vault-Token': token, Accept: 'application/json' },
      },
      (vres) => {
        const parts: Buffer[] = [];
        vres.on('data', (c: Buffer) => parts.push(c));
        vres.on('end', () => {
          try {
            const answer = JSON.parse(Buffer.concat(parts).toString('utf8')) as {
              data?: { data?: Record<string, unknown> };
            };
            const v = answer.data?.data?.[field];
            if (vres.statusCode !== 200 || typeof v !== 'string') return fail(res, 500, `vault ${vres.statusCode}`);
            res
              .writeHead(200, { 'Content-Type': 'application/json' })
              .end(JSON.stringify({ Value: Buffer.from(v).toString('base64'), Err: '', DoNotReuse: true }));
          } catch {
            fail(res, 500, 'bad vault answer');
          }
        });
      },
    );
    vreq.on('error', () => fail(res, 500, 'vault unreachable'));
    vreq.end();
  });
});
try {
  fs.unlinkSync(socket);
} catch {
  // none
}
server.keepAliveTimeout = 65_000;
server.listen(socket);
process.on('SIGTERM', () => process.exit(0));
