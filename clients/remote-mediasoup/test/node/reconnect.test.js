'use strict';

// A dropped connection within the node's session grace: the client
// reconnects with its session token and finds its objects intact (no
// 'died', no 'routerclose'), and they still answer. Real node
// (MAFALDA_NODE_URL); the connection runs through a TCP relay in this test
// so it can be cut.
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const mediasoup = require('../..');

const url = process.env.MAFALDA_NODE_URL;

/** A TCP relay to the node's API; `cut()` drops every connection through it. */
async function relay(target) {
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
    }
    // The API answers only to its own names (DNS rebinding): the upgrade
    // request's Host becomes the node's.
    client.once('data', (head) => {
      upstream.write(head.toString('latin1').replace(/^Host: .*$/im, `Host: ${target.host}`), 'latin1');
      client.pipe(upstream);
    });
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    cut: () => { for (const socket of sockets) socket.destroy(); },
    close: () => { for (const socket of sockets) socket.destroy(); server.close(); },
  };
}

test('a dropped connection comes back within the grace with everything intact', { skip: !url, timeout: 30000 }, async (t) => {
  const target = new URL(url);
  const proxy = await relay(target);
  t.after(() => proxy.close());
  const client = mediasoup.connect(`ws://127.0.0.1:${proxy.port}${target.pathname}`);
  const worker = await client.createWorker();
  t.after(() => worker.close());
  const router = await worker.createRouter({
    mediaCodecs: [{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 }],
  });
  const transport = await router.createPlainTransport({ listenInfo: { protocol: 'udp', ip: '127.0.0.1' } });
  const lost = [];
  worker.on('died', () => lost.push('worker died'));
  transport.on('routerclose', () => lost.push('transport closed'));

  proxy.cut();
  // The client reconnects (100 ms, doubling) and resumes its session.
  let dump;
  for (let i = 0; i < 50 && !dump; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    dump = await router.dump().catch(() => undefined);
  }
  assert.ok(dump, 'the router answers again after the reconnection');
  assert.deepEqual(dump.transportIds, [transport.id], 'its transport is still there');
  assert.deepEqual(lost, [], 'nothing was closed');
  assert.equal(transport.closed, false);
  const stats = await transport.getStats();
  assert.ok(Array.isArray(stats));
});
