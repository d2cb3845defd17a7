// A TCP proxy in front of a server on loopback, listening on loopback or another local
// address (a test bridge): counts connections (keep-alive checks), can slow answers, hold
// what clients send (a raft follower that stops receiving the leader's log) or cut the open
// connections (faults mid-run).
import * as net from 'node:net';

export interface TcpProxy {
  port: number;
  /** Where new connections go (may be set after the proxy listens: its own port is then known first). */
  targetPort: number;
  connections: number;
  /** Holds every answer this long before passing it on (0: none): a slow Vault. */
  delayMs: number;
  /** Queues what clients send until the returned function is called; answers still flow. */
  hold(): () => void;
  /** Closes every open connection at once, as a crash would. */
  cutAll(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, listenHost = '127.0.0.1'): Promise<TcpProxy> {
  const open = new Set<net.Socket>();
  let held: Array<() => void> | undefined;
  const proxy: TcpProxy = {
    port: 0,
    targetPort,
    connections: 0,
    delayMs: 0,
    hold() {
      held ??= [];
      return () => {
        const queued = held ?? [];
        held = undefined;
        for (const send of queued) send();
      };
    },
    cutAll() {
      for (const s of open) s.destroy();
    },
    close() {
      proxy.cutAll();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  const server = net.createServer((client) => {
    proxy.connections++;
    const upstream = net.connect(proxy.targetPort, '127.0.0.1');
    open.add(client);
    open.add(upstream);
    const done = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', done).on('close', done);
    upstream.on('error', done).on('close', done);
    client.on('data', (chunk: Buffer) => {
      const send = () => {
        if (!upstream.destroyed) upstream.write(chunk);
      };
      if (held) held.push(send);
      else send();
    });
    upstream.on('data', (chunk: Buffer) => {
      const send = () => {
        if (!client.destroyed) client.write(chunk);
      };
      if (proxy.delayMs > 0) setTimeout(send, proxy.delayMs);
      else send();
    });
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, listenHost, () => resolve()));
  proxy.port = (server.address() as net.AddressInfo).port;
  return proxy;
}
