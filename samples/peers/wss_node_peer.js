#!/usr/bin/env node
'use strict';
// Node `ws` over TLS (wss) for samples/wss.sh: an HTTPS server with a ws
// WebSocketServer and a ws client in one process, run with
// `node --tls-keylog=FILE` so that node writes the key log of every TLS
// connection of the process (server and client both log the same secrets).
//
//   node --tls-keylog=KEYS wss_node_peer.js --port P --cert CERT --key KEY
//        [--cipher TLS_CHACHA20_POLY1305_SHA256] [--idle-ms 1200]
//
// Two connections, one after the other, to wss://127.0.0.1:P with SNI
// "localhost" (the certificate's name), no ALPN (ws does not offer any):
//   1. /close: 3 text messages echoed, --idle-ms of silence, then the
//      server closes with 1000 "server done"; the client answers (a clean
//      close from the server), the server ends TCP (ws: socket.end(), so a
//      close_notify first).
//   2. /terminate: 3 text messages echoed, --idle-ms of silence, then the
//      server calls ws.terminate(): the socket is destroyed, no close frame,
//      no close_notify (browsers report 1006).
// Every wait is bounded; exits 0 when both connections are over.

const fs = require('fs');
const https = require('https');
const { WebSocket, WebSocketServer } = require('ws');

function parseArgs(argv) {
  const o = { port: 0, cert: '', key: '', cipher: '', idleMs: 1200, maxSeconds: 30 };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === '--port') o.port = Number(v);
    else if (k === '--cert') o.cert = v;
    else if (k === '--key') o.key = v;
    else if (k === '--cipher') o.cipher = v;
    else if (k === '--idle-ms') o.idleMs = Number(v);
    else if (k === '--max-seconds') o.maxSeconds = Number(v);
    else throw new Error(`unknown option ${k}`);
  }
  if (!o.port || !o.cert || !o.key) {
    console.error('usage: wss_node_peer.js --port P --cert CERT --key KEY [--cipher C] [--idle-ms MS]');
    process.exit(2);
  }
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const log = (...a) => console.error(`[wss_node_peer ${process.pid}]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

setTimeout(() => {
  log('max lifetime reached, exiting');
  process.exit(3);
}, opts.maxSeconds * 1000).unref();

const cert = fs.readFileSync(opts.cert);
const key = fs.readFileSync(opts.key);

const server = https.createServer({ cert, key });
const wss = new WebSocketServer({ server });

wss.on('connection', (ws, req) => {
  const path = req.url.split('?')[0];
  let n = 0;
  ws.on('error', (e) => log('server ws error', e.message));
  ws.on('close', (code, reason) => log(`server: ${path} closed`, code, reason.toString()));
  ws.on('message', (data, isBinary) => {
    n += 1;
    if (ws.readyState !== WebSocket.OPEN) return;
    ws.send(data, { binary: isBinary });
    if (n !== 3) return;
    if (path === '/close') setTimeout(() => ws.close(1000, 'server done'), opts.idleMs);
    else if (path === '/terminate') setTimeout(() => ws.terminate(), opts.idleMs);
  });
});

function open(path) {
  return new Promise((resolve, reject) => {
    const tls = { ca: cert, servername: 'localhost' };
    if (opts.cipher) tls.ciphers = opts.cipher;
    const ws = new WebSocket(`wss://127.0.0.1:${opts.port}${path}`, tls);
    ws.closed = new Promise((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
    ws.inbox = [];
    ws.waiters = [];
    ws.on('message', (d) => {
      const w = ws.waiters.shift();
      if (w) w(d);
      else ws.inbox.push(d);
    });
    ws.once('open', () => resolve(ws));
    ws.on('error', (e) => {
      log('client ws error', e.message);
      reject(e);
    });
  });
}

function recv(ws, ms = 5000) {
  if (ws.inbox.length) return Promise.resolve(ws.inbox.shift());
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('recv timeout')), ms);
    ws.waiters.push((d) => {
      clearTimeout(t);
      resolve(d);
    });
  });
}

async function conversation(path) {
  const ws = await open(path);
  log(`client: ${path} open, ${ws._socket.getProtocol()} ${ws._socket.getCipher().standardName}`);
  for (const text of ['hello over wss', `${path} message 2`, 'y'.repeat(200)]) {
    ws.send(text);
    await recv(ws);
  }
  const closed = await Promise.race([ws.closed, sleep(opts.idleMs + 5000).then(() => ({ code: 'timeout' }))]);
  log(`client: ${path} closed`, closed);
}

server.listen(opts.port, '127.0.0.1', async () => {
  log(`server listening on 127.0.0.1:${opts.port}`);
  try {
    await conversation('/close');
    await sleep(300);
    await conversation('/terminate');
    await sleep(300);
  } catch (e) {
    log('failed:', e.message);
    process.exit(1);
  }
  wss.close();
  server.close(() => process.exit(0));
});
