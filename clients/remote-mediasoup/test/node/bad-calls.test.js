'use strict';

// Bad calls against a real node (MAFALDA_NODE_URL; scripts/compat.sh starts
// one): each is refused with mediasoup's own error class, nothing is made,
// and the node keeps serving. Another connection's objects are out of reach.
const test = require('node:test');
const assert = require('node:assert/strict');
const mediasoup = require('../..');

const { InvalidStateError, UnsupportedError } = mediasoup.types;
const url = process.env.MAFALDA_NODE_URL;
const opus = { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 };

/** A check that the error is exactly of class `cls` (not a subclass). */
const exactly = (cls) => (error) => error.constructor === cls;

test('bad calls get mediasoup\'s error classes and the node stays healthy', { skip: !url, timeout: 30000 }, async (t) => {
  const worker = await mediasoup.createWorker();
  // Closed whatever happens, so the connection lets the process exit.
  t.after(() => worker.close());
  const router = await worker.createRouter({ mediaCodecs: [opus] });
  const transport = await router.createPlainTransport({ listenInfo: { protocol: 'udp', ip: '127.0.0.1' } });

  // Wrong options.
  await assert.rejects(router.createPlainTransport({ listenInfo: { protocol: 'udp', ip: 'not-an-ip' } }), exactly(TypeError));
  await assert.rejects(router.createWebRtcTransport({}), exactly(TypeError));
  await assert.rejects(transport.produce({ kind: 'audio', rtpParameters: { codecs: 'nope' } }), exactly(TypeError));
  // A codec the router does not have.
  await assert.rejects(
    transport.produce({
      kind: 'video',
      rtpParameters: { codecs: [{ mimeType: 'video/VP8', payloadType: 100, clockRate: 90000 }], encodings: [{ ssrc: 1 }] },
    }),
    exactly(UnsupportedError),
  );
  // An unknown producer (mediasoup throws a plain Error here).
  await assert.rejects(
    transport.consume({ producerId: '00000000-0000-4000-8000-000000000000', rtpCapabilities: router.rtpCapabilities }),
    exactly(Error),
  );
  // A closed object.
  transport.close();
  await assert.rejects(transport.getStats(), exactly(InvalidStateError));

  // Another connection (its own session) cannot reach this one's objects.
  const other = mediasoup.connect(url, { token: process.env.MAFALDA_NODE_TOKEN });
  const otherWorker = await other.createWorker();
  t.after(() => otherWorker.close());
  const otherRouter = await otherWorker.createRouter({ mediaCodecs: [opus] });
  assert.notEqual(otherRouter.id, router.id);
  const dump = await router.dump();
  assert.equal(dump.id, router.id);
  assert.deepEqual(dump.transportIds, [], 'the closed transport is gone, nothing was made by the refused calls');

  // Still healthy.
  const health = await fetch(url.replace(/^ws/, 'http').replace(/\/v1\/rope.*$/, '/healthz'));
  assert.equal(health.status, 200);
});
