// The entry point (`npm start`, the rootfs entrypoint). Docker dials the plugin socket soon
// after start and disables a plugin that does not answer, so the socket is opened first,
// with nothing but node's own modules loaded; the plugin itself (Express, node-vault,
// winston, ajv: most of the start-up time) is loaded next and is handed the requests that
// arrived meanwhile. The process never exits because Vault is down or a setting is wrong.
import './heap-flags'; // first: node's own modules must load after it (see there)
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { socketSetting } from './config/socket';
import { listenOnSocket } from './plugin/server';

export async function main(): Promise<void> {
  const early: Array<[IncomingMessage, ServerResponse]> = [];
  let handler: RequestListener | undefined;
  const socket = socketSetting(process.env);
  const server = await listenOnSocket((req, res) => (handler ? handler(req, res) : early.push([req, res])), socket);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { startPlugin } = require('./wiring') as typeof import('./wiring');
  handler = startPlugin(server, socket);
  for (const [req, res] of early.splice(0)) handler(req, res);
}

if (require.main === module) {
  main().catch((err) => {
    // Only reached when the socket cannot be opened at all: nothing can serve Docker then.
    process.stderr.write(`DSO plugin cannot start: ${(err as Error)?.message ?? err}\n`);
    process.exit(1);
  });
}
