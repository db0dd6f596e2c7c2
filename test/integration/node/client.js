// A Node ws client for test_deflate.py (node scenario), one JSON line per event on stdout.
//   node client.js URL deflate|plain
// deflate: offers permessage-deflate (ws's perMessageDeflate) and, after the first
// broadcast, sends a message large enough that ws compresses it; then a ping either way.
'use strict';
const WebSocket = require('ws');

const [url, mode] = process.argv.slice(2);
const deflate = mode === 'deflate';
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const ws = new WebSocket(url, { perMessageDeflate: deflate ? { threshold: 0 } : false });
let first = true;

ws.on('open', () => out({ event: 'open', deflate: ws.extensions }));
ws.on('message', (data, isBinary) => {
  out({ event: 'message', data: data.toString(), binary: isBinary });
  if (!first) return;
  first = false;
  if (deflate) ws.send(JSON.stringify({ ack: true, pad: 'y'.repeat(1500) }));
  ws.ping('after');
});
ws.on('pong', (d) => out({ event: 'pong', data: d.toString() }));
ws.on('close', (code) => { out({ event: 'close', code }); process.exit(0); });
ws.on('error', (e) => { out({ event: 'error', message: String(e) }); process.exit(1); });
setTimeout(() => process.exit(2), 60000).unref(); // a hang bound, whatever happens
