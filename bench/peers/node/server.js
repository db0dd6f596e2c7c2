'use strict';
// A minimal push server with ws, as bench/compare.sh measures it against wspush: upgrades on
// any path, and on SIGUSR1 sends the same string, {"time":<epoch ms>,"seq":<n>}, to every
// open client with one ws.send() each. Logs key=value lines to stderr like wspush.
//   node server.js [--port 8080] [--bind 127.0.0.1]   (or PORT, BIND in the environment)
// Node cannot raise its own open-file limit: start it under `ulimit -n` (bench/peers/run.sh).
const { WebSocketServer, WebSocket } = require('ws');

function arg(name, env, def) {
  const i = process.argv.indexOf(name);
  if (i > 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  return process.env[env] || def;
}
const port = Number(arg('--port', 'PORT', '8080'));
const host = arg('--bind', 'BIND', '127.0.0.1');
const log = (line) => process.stderr.write(line + '\n');

// No path option: every path upgrades. perMessageDeflate is off by default in ws 8.
const wss = new WebSocketServer({ host, port });
wss.on('listening', () => log(`event=listening server=node-ws addr=${host}:${port} node=${process.version}`));
wss.on('error', (err) => {
  log(`event=listen_failed error="${err.message}"`);
  process.exit(1);
});
wss.on('connection', (ws) => ws.on('error', () => ws.terminate()));

let seq = 0;
// Node reserves SIGUSR1 for its inspector; a listener replaces that (no debugger starts).
process.on('SIGUSR1', () => {
  const t0 = process.hrtime.bigint();
  seq += 1;
  const msg = JSON.stringify({ time: Date.now(), seq });
  let sent = 0;
  for (const ws of wss.clients) {
    if (ws.readyState === WebSocket.OPEN) {
      ws.send(msg);
      sent += 1;
    }
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  log(`event=broadcast seq=${seq} conns=${wss.clients.size} written=${sent} loop_ms=${ms.toFixed(3)}`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
setInterval(() => log(`event=conns conns=${wss.clients.size}`), 5000);
