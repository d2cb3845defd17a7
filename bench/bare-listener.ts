// The floor of the cold-start scenario: a node process that only listens on its Unix socket
// (DSO_SOCKET, as the plugin is given it). Started by bench/lib.ts as the plugin is: same
// environment, a file rather than `node -e`, with and without the plugin's node flags.
import * as net from 'node:net';

net.createServer().listen(process.env.DSO_SOCKET);
