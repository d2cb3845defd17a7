// Listens on the plugin's Unix socket. A stale socket file from an earlier run is replaced.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { RequestListener } from 'node:http';

export async function listenOnSocket(handler: RequestListener, socketPath: string): Promise<http.Server> {
  fs.mkdirSync(path.dirname(socketPath), { recursive: true });
  try {
    fs.unlinkSync(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const server = http.createServer(handler);
  // Docker keeps connections open between calls; slow or idle clients must not pile up forever.
  server.keepAliveTimeout = 65_000;
  server.requestTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // A herd of calls (or calls queued while the plugin loads) must not overflow the accept
    // queue: on a Unix socket an overflow is an immediate EAGAIN for the caller, not a retry.
    server.listen({ path: socketPath, backlog: 4096 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  fs.chmodSync(socketPath, 0o660);
  return server;
}
