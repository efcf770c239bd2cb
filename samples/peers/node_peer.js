#!/usr/bin/env node
'use strict';
// Node `ws` peers for the wsclose sample captures (see samples/regen.sh).
//
//   node node_peer.js server SCENARIO --port P [--host H] [--conns N] [--max-seconds S]
//   node node_peer.js client SCENARIO --port P [--host H] [--max-seconds S]
//
// Servers exit after N finished connections (or --max-seconds at the latest);
// clients exit when their scenario is done. Every wait is bounded.

const crypto = require('crypto');
const { WebSocket, WebSocketServer } = require('ws');

function parseArgs(argv) {
  const [role, scenario, ...rest] = argv;
  const o = { role, scenario, host: '127.0.0.1', port: 0, conns: 1, maxSeconds: 60 };
  for (let i = 0; i < rest.length; i += 2) {
    const k = rest[i];
    const v = rest[i + 1];
    if (k === '--host') o.host = v;
    else if (k === '--port') o.port = Number(v);
    else if (k === '--conns') o.conns = Number(v);
    else if (k === '--max-seconds') o.maxSeconds = Number(v);
    else throw new Error(`unknown option ${k}`);
  }
  if (!['server', 'client'].includes(role) || !scenario || !o.port) {
    console.error('usage: node_peer.js server|client SCENARIO --port P [--host H] [--conns N]');
    process.exit(2);
  }
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const log = (...a) => console.error(`[node ${process.pid}]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const url = (host, port, path) =>
  `ws://${host.includes(':') ? `[${host}]` : host}:${port}${path}`;

// Hard upper bound on the process lifetime.
setTimeout(() => {
  log('max lifetime reached, exiting');
  process.exit(3);
}, opts.maxSeconds * 1000).unref();

// Deterministic pseudo-random numbers (mulberry32), so regenerated captures
// have the same shape.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------
// server
// ---------------------------------------------------------------------------

function runServer({ scenario, host, port, conns }) {
  let finished = 0;
  const oneFinished = () => {
    finished += 1;
    if (finished >= conns) {
      // Give the last connection time to finish its TCP closing.
      setTimeout(() => wss.close(() => process.exit(0)), 500);
    }
  };

  const wss = new WebSocketServer({
    host,
    port,
    // ws servers do NOT negotiate permessage-deflate unless asked to; ws
    // clients offer it by default.
    perMessageDeflate: ['many', 'large'].includes(scenario),
    verifyClient: (info, cb) => {
      if (info.req.url.startsWith('/reject')) {
        setImmediate(oneFinished);
        cb(false, 401, 'Unauthorized');
      } else cb(true);
    },
  });
  wss.on('listening', () => log(`server ${scenario} listening on ${host}:${port}`));

  wss.on('connection', (ws, req) => {
    const path = req.url.split('?')[0];
    const mode = ['many', 'large'].includes(scenario) ? path.slice(1) : scenario;
    let n = 0;
    ws.on('close', (code, reason) => {
      log(`server: connection ${req.url} closed`, code, reason.toString());
      oneFinished();
    });
    ws.on('error', (e) => log('server ws error', e.message));

    if (mode === 'ping' || mode === 'ping-pong') {
      // Server pings the client twice (the client's ws answers with pongs).
      ws.ping(Buffer.from('server ping 1'));
      setTimeout(() => ws.readyState === WebSocket.OPEN && ws.ping(Buffer.from('server ping 2')), 100);
    }
    if (mode === 'ping') setTimeout(() => ws.close(1001, 'ping test over'), 400);

    ws.on('message', (data, isBinary) => {
      n += 1;
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send(data, { binary: isBinary });
      if (mode === 'server-close-reason' && n === 3) {
        setTimeout(() => ws.close(1001, 'server shutting down'), 300);
      } else if (mode === 'server-close' && n === 3) {
        ws.close(1000, 'done');
      } else if (mode === 'terminate' && n === 3) {
        setTimeout(() => ws.terminate(), 300);
      } else if (mode === 'close-1011' && n === 2) {
        ws.close(1011, 'unexpected condition');
      } else if (mode === 'close-4000' && n === 5) {
        ws.close(4000, 'quota exceeded');
      }
    });
  });
}

// ---------------------------------------------------------------------------
// client helpers
// ---------------------------------------------------------------------------

function open(u, options = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(u, options);
    ws.closed = new Promise((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
    ws.messages = [];
    ws.waiters = [];
    ws.on('message', (data) => {
      const w = ws.waiters.shift();
      if (w) w(data);
      else ws.messages.push(data);
    });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (req, res) => {
      log(`upgrade rejected: ${res.statusCode} ${res.statusMessage}`);
      res.resume();
      req.destroy();
      resolve(null);
    });
    ws.on('error', (e) => {
      log('client ws error', e.message);
      reject(e);
    });
  });
}

function recv(ws, ms = 5000) {
  if (ws.messages.length) return Promise.resolve(ws.messages.shift());
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('recv timeout')), ms);
    ws.waiters.push((d) => {
      clearTimeout(t);
      resolve(d);
    });
  });
}

function waitClosed(ws, ms = 15000) {
  return Promise.race([ws.closed, sleep(ms).then(() => ({ code: 'timeout' }))]);
}

function pingPong(ws, payload) {
  return new Promise((resolve) => {
    ws.once('pong', resolve);
    ws.ping(Buffer.from(payload));
  });
}

async function echo(ws, data, options) {
  ws.send(data, options);
  return recv(ws);
}

// ---------------------------------------------------------------------------
// client scenarios
// ---------------------------------------------------------------------------

async function runClient({ scenario, host, port }) {
  if (scenario === 'server-close-reason' || scenario === 'terminate') {
    const ws = await open(url(host, port, '/feed'));
    for (let i = 0; i < 3; i++) {
      await echo(ws, `message ${i}`);
      await sleep(50);
    }
    log('closed:', await waitClosed(ws));
  } else if (scenario === 'clean') {
    const ws = await open(url(host, port, '/chat'));
    for (let i = 0; i < 3; i++) await echo(ws, `hello ${i}`);
    await sleep(300);
    ws.close(1000, 'bye');
    log('closed:', await waitClosed(ws));
  } else if (scenario === 'ping-pong') {
    const ws = await open(url(host, port, '/pingpong'));
    for (let i = 0; i < 3; i++) {
      await pingPong(ws, `client ping ${i}`);
      await echo(ws, `text after ping ${i}`);
      await sleep(100);
    }
    await sleep(200);
    ws.close(1000, 'pings done');
    log('closed:', await waitClosed(ws));
  } else if (scenario === 'many') {
    await runManyNode(host, port);
  } else if (scenario === 'large') {
    await runLarge(host, port);
  } else {
    throw new Error(`unknown client scenario ${scenario}`);
  }
}

// Node side of many-connections.pcap: port = node ws server, port+1 = python
// websockets server, port+2 = raw server.
async function runManyNode(host, port) {
  const node = port;
  const py = port + 1;
  const raw = port + 2;
  let ws;

  // a. node -> node, permessage-deflate NOT offered, binary messages, client close.
  ws = await open(url(host, node, '/echo'), { perMessageDeflate: false });
  for (let i = 0; i < 3; i++) await echo(ws, crypto.randomBytes(32 + i * 16), { binary: true });
  ws.close(1000);
  log('a closed:', await waitClosed(ws));

  // b. node -> node /terminate (deflate on): the server calls terminate().
  ws = await open(url(host, node, '/terminate'));
  for (let i = 0; i < 3; i++) await echo(ws, `before terminate ${i}`);
  log('b closed:', await waitClosed(ws));

  // c. node -> node /server-close: server closes 1000 "done" after 3 messages.
  ws = await open(url(host, node, '/server-close'));
  for (let i = 0; i < 3; i++) ws.send(`msg ${i} `.repeat(20));
  log('c closed:', await waitClosed(ws));

  // d. node -> node /ping: server pings twice then closes 1001.
  ws = await open(url(host, node, '/ping'), { perMessageDeflate: false });
  log('d closed:', await waitClosed(ws));

  // e. node -> python websockets, deflate on, fragmented text message from the
  //    client (text frame + continuation frames), client close 1000.
  ws = await open(url(host, py, '/echo'));
  ws.send('first fragment, ', { fin: false });
  ws.send('second fragment, ', { fin: false });
  ws.send('last fragment', { fin: true });
  log('e echoed:', (await recv(ws)).toString());
  ws.close(1000, 'fragments ok');
  log('e closed:', await waitClosed(ws));

  // f. node -> python websockets /close-1011: server closes with 1011.
  ws = await open(url(host, py, '/close-1011'), { perMessageDeflate: false });
  await echo(ws, 'trigger an error close');
  log('f closed:', await waitClosed(ws));

  // g. node -> node, deflate on, one 100 KB binary message, then the client
  //    calls terminate() (no close frame).
  ws = await open(url(host, node, '/echo'));
  await echo(ws, crypto.randomBytes(100 * 1024), { binary: true });
  await sleep(200);
  ws.terminate();
  log('g closed:', await waitClosed(ws));

  // h. node -> python websockets /reject: 403.
  ws = await open(url(host, py, '/reject'));
  if (ws) ws.terminate();

  // i. node -> raw /fin: the raw server never answers the close frame and
  //    closes TCP (FIN).
  ws = await open(url(host, raw, '/fin'), { perMessageDeflate: false });
  await recv(ws);
  ws.close(1000, 'bye raw');
  log('i closed:', await waitClosed(ws));
}

// large.pcap: many connections, many messages, mixed closes.
async function runLarge(host, port) {
  const N = Number(process.env.LARGE_CONNS || 200);
  const MSGS = Number(process.env.LARGE_MSGS || 300);
  const CONCURRENCY = 10;
  const raw = port + 2;
  const kinds = ['client-1000', 'server-close', 'client-1001', 'terminate', 'client-terminate',
    'close-1011', 'client-4000', 'close-4000'];
  const words = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor'.split(' ');

  async function one(i) {
    const r = rng(1000 + i);
    const kind = kinds[i % kinds.length];
    const deflate = i % 2 === 0;
    const path = { 'server-close': '/server-close', terminate: '/terminate', 'close-1011': '/close-1011',
      'close-4000': '/close-4000' }[kind] || '/echo';
    const ws = await open(url(host, port, `${path}?conn=${i}`), { perMessageDeflate: deflate });
    // The server-side behaviours trigger after a few messages; other kinds
    // exchange MSGS messages of mixed sizes and types.
    const count = path === '/echo' ? MSGS : 6;
    for (let m = 0; m < count && ws.readyState === WebSocket.OPEN; m++) {
      const size = Math.floor(r() < 0.9 ? 16 + r() * 600 : 2000 + r() * 6000);
      if (r() < 0.5) {
        let s = '';
        while (s.length < size) s += words[Math.floor(r() * words.length)] + ' ';
        ws.send(s);
      } else {
        ws.send(crypto.randomBytes(size), { binary: true });
      }
      if (r() < 0.05) await pingPong(ws, `ping ${m}`);
      try {
        await recv(ws, 3000);
      } catch (e) {
        break;
      }
    }
    if (kind === 'client-1000') ws.close(1000, 'bye');
    else if (kind === 'client-1001') ws.close(1001, 'navigating away');
    else if (kind === 'client-4000') ws.close(4003, 'session expired');
    else if (kind === 'client-terminate') ws.terminate();
    await waitClosed(ws, 15000);
  }

  // A few connections to the raw server: unanswered (FIN), unanswered (RST),
  // and timeout (silent for 7 s) closes, run concurrently with the rest.
  async function rawOne(mode) {
    const ws = await open(url(host, raw, `/${mode}`), { perMessageDeflate: false });
    await recv(ws);
    ws.close(1000, `bye ${mode}`);
    await waitClosed(ws, 15000);
  }
  const rawDone = Promise.all(['fin', 'rst', 'silent', 'fin', 'rst', 'silent'].map(rawOne));

  let next = 0;
  async function worker() {
    while (next < N) {
      const i = next++;
      await one(i);
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  await rawDone;
}

// ---------------------------------------------------------------------------

if (opts.role === 'server') runServer(opts);
else
  runClient(opts).then(
    () => setTimeout(() => process.exit(0), 200),
    (e) => {
      log('client failed:', e);
      process.exit(1);
    },
  );
