'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { once } = require('node:events');
const { randomUUID } = require('node:crypto');
const { spawn } = require('node:child_process');
const path = require('node:path');
const ortc = require('@mafalda-sfu/mediasoup-ortc');
const mediasoup = require('../..');
const { FakeNode, ropeError } = require('./fakeNode');

const { InvalidStateError, UnsupportedError } = mediasoup.types;

const mediaCodecs = [
	{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
	{ kind: 'video', mimeType: 'video/VP8', clockRate: 90000 },
];

const audioRtpParameters = {
	mid: 'AUDIO',
	codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2 }],
	headerExtensions: [],
	encodings: [{ ssrc: 11111111 }],
	rtcp: { cname: 'audio-1' },
};

/** Handlers that make routers, transports and producers like a node would. */
function mediaHandlers(extra = {}) {
	const routerCaps = new Map();
	const transportRouter = new Map();
	return {
		createRouter: (params, target) => {
			const id = randomUUID();
			routerCaps.set(id, ortc.generateRouterRtpCapabilities(params.mediaCodecs || []));
			return { id, rtpCapabilities: routerCaps.get(id) };
		},
		createWebRtcTransport: (params, target) => {
			const id = randomUUID();
			transportRouter.set(id, target);
			return {
				id,
				iceRole: 'controlled',
				iceParameters: { usernameFragment: 'u', password: 'p', iceLite: true },
				iceCandidates: [],
				iceState: 'new',
				iceSelectedTuple: null,
				dtlsParameters: { role: 'auto', fingerprints: [] },
				dtlsState: 'new',
				sctpParameters: params.enableSctp ? { port: 5000, OS: 1024, MIS: 1024, maxMessageSize: 262144 } : null,
				sctpState: params.enableSctp ? 'new' : null,
			};
		},
		produce: (params, target) => {
			const caps = routerCaps.get(transportRouter.get(target));
			const mapping = ortc.getProducerRtpParametersMapping(params.rtpParameters, caps);
			const consumableRtpParameters = ortc.getConsumableRtpParameters(params.kind, params.rtpParameters, caps, mapping);
			return {
				id: params.id || randomUUID(),
				kind: params.kind,
				rtpParameters: params.rtpParameters,
				type: 'simple',
				consumableRtpParameters,
				paused: Boolean(params.paused),
				score: [],
			};
		},
		consume: (params) => ({
			id: randomUUID(),
			producerId: params.producerId,
			kind: 'audio',
			rtpParameters: audioRtpParameters,
			type: 'simple',
			paused: false,
			producerPaused: false,
			score: { score: 10, producerScore: 0, producerScores: [0] },
			priority: 1,
		}),
		...extra,
	};
}

async function withNode(handlers, fn) {
	const node = await new FakeNode(handlers).start();
	const ms = mediasoup.connect(node.url, { token: 'secret' });
	try {
		await fn(node, ms);
	} finally {
		ms.close();
		await node.stop();
	}
}

test('createWorker: JSON frames, bearer token, node peer id, observer newworker', async () => {
	await withNode({}, async (node, ms) => {
		const seen = [];
		ms.observer.on('newworker', (w) => seen.push(w));
		const worker = await ms.createWorker({ logLevel: 'warn', appData: { foo: 1 }, node: 'peer-1' });
		assert.equal(worker.constructor.name, 'Worker');
		assert.equal(worker.pid, 4242);
		assert.equal(worker.closed, false);
		assert.equal(worker.died, false);
		assert.deepEqual(worker.appData, { foo: 1 });
		assert.deepEqual(seen, [worker]);
		assert.match(node.upgrades[0].url, /\/v1\/rope\?format=json$/);
		assert.equal(node.upgrades[0].headers.authorization, 'Bearer secret');
		const call = node.calls.find((c) => c.method === 'mediasoup.createWorker');
		assert.deepEqual(call.params, { logLevel: 'warn', node: 'peer-1' });
		assert.equal(call.target, undefined);
		worker.close();
		await once(worker, 'subprocessclose');
		assert.equal(worker.subprocessClosed, true);
		assert.ok(node.calls.some((c) => c.method === 'close' && c.target === worker.id));
	});
});

test('argument checks and error classes', async () => {
	await withNode(
		{
			'mediasoup.createWorker': (params) => {
				if (params.logLevel === 'chicken') throw ropeError(-32602, 'bad logLevel', 'TypeError');
				return { id: randomUUID(), pid: 1 };
			},
			createRouter: () => {
				throw ropeError(-32031, 'no codec', 'UnsupportedError');
			},
			dump: () => {
				throw ropeError(-32030, 'Worker closed', 'InvalidStateError');
			},
			getResourceUsage: () => {
				throw ropeError(-32032, 'nope', 'Error');
			},
		},
		async (node, ms) => {
			await assert.rejects(ms.createWorker({ appData: 'NOT-AN-OBJECT' }), TypeError);
			assert.equal(node.calls.length, 0, 'refused locally');
			await assert.rejects(ms.createWorker({ logLevel: 'chicken' }), TypeError);
			const worker = await ms.createWorker();
			await assert.rejects(worker.createRouter({ mediaCodecs: [] }), UnsupportedError);
			await assert.rejects(worker.dump(), InvalidStateError);
			await assert.rejects(worker.getResourceUsage(), (e) => e instanceof Error && !(e instanceof TypeError));
			await assert.rejects(worker.createRouter({ mediaCodecs: {} }), TypeError);
			worker.close();
			await assert.rejects(worker.createRouter(), InvalidStateError);
			await assert.rejects(worker.updateSettings({ logLevel: 'warn' }), InvalidStateError);
		}
	);
});

test('worker.close() cascades locally, in mediasoup order', async () => {
	await withNode(mediaHandlers(), async (node, ms) => {
		const worker = await ms.createWorker();
		const router = await worker.createRouter({ mediaCodecs });
		const transport = await router.createWebRtcTransport({ listenInfos: [{ protocol: 'udp', ip: '127.0.0.1' }], enableSctp: true });
		const producer = await transport.produce({ kind: 'audio', rtpParameters: audioRtpParameters });
		const consumer = await transport.consume({ producerId: producer.id, rtpCapabilities: router.rtpCapabilities });
		const order = [];
		for (const [name, obj, ev] of [
			['router', router, 'workerclose'],
			['transport', transport, 'routerclose'],
			['producer', producer, 'transportclose'],
			['consumer', consumer, 'transportclose'],
		]) {
			obj.on(ev, () => order.push(`${name}:${ev}`));
			obj.observer.on('close', () => order.push(`${name}:observer.close`));
		}
		worker.observer.on('close', () => order.push('worker:observer.close'));
		const closesBefore = node.calls.filter((c) => c.method === 'close').length;
		worker.close();
		assert.deepEqual(order, [
			'producer:transportclose',
			'producer:observer.close',
			'consumer:transportclose',
			'consumer:observer.close',
			'transport:routerclose',
			'transport:observer.close',
			'router:workerclose',
			'router:observer.close',
			'worker:observer.close',
		]);
		assert.equal(transport.iceState, 'closed');
		assert.equal(transport.dtlsState, 'closed');
		assert.equal(transport.sctpState, 'closed');
		assert.equal(transport.iceSelectedTuple, undefined);
		assert.equal(worker.routersForTesting.size, 0);
		await once(worker, 'subprocessclose');
		const closes = node.calls.filter((c) => c.method === 'close').slice(closesBefore);
		assert.deepEqual(closes.map((c) => c.target), [worker.id], 'only the worker close is sent');
	});
});

test('producer.close() keeps consumers until the node says producerclose', async () => {
	await withNode(mediaHandlers(), async (node, ms) => {
		const worker = await ms.createWorker();
		const router = await worker.createRouter({ mediaCodecs });
		const transport = await router.createWebRtcTransport({ listenInfos: [{ protocol: 'udp', ip: '127.0.0.1' }] });
		const producer = await transport.produce({ kind: 'audio', rtpParameters: audioRtpParameters });
		assert.equal(router.canConsume({ producerId: producer.id, rtpCapabilities: router.rtpCapabilities }), true);
		assert.equal(
			router.canConsume({ producerId: producer.id, rtpCapabilities: { codecs: [], headerExtensions: [] } }),
			false
		);
		assert.equal(router.canConsume({ producerId: 'nope', rtpCapabilities: router.rtpCapabilities }), false);
		const consumer = await transport.consume({ producerId: producer.id, rtpCapabilities: router.rtpCapabilities });
		let observerClosed = 0;
		consumer.observer.on('close', () => observerClosed++);
		producer.close();
		assert.equal(producer.closed, true);
		assert.equal(consumer.closed, false);
		assert.equal(router.canConsume({ producerId: producer.id, rtpCapabilities: router.rtpCapabilities }), false);
		const closed = once(consumer, 'producerclose');
		node.event(consumer.id, 'consumer', 'producerclose', []);
		node.event(consumer.id, 'consumer', 'closed', null);
		await closed;
		assert.equal(consumer.closed, true);
		assert.equal(observerClosed, 1);
		await assert.rejects(transport.consume({ producerId: producer.id, rtpCapabilities: router.rtpCapabilities }), /not found/);
		worker.close();
	});
});

test('named events update state and reach the observer', async () => {
	await withNode(mediaHandlers(), async (node, ms) => {
		const worker = await ms.createWorker();
		const router = await worker.createRouter({ mediaCodecs });
		const transport = await router.createWebRtcTransport({ listenInfos: [{ protocol: 'udp', ip: '127.0.0.1' }] });
		const producer = await transport.produce({ kind: 'audio', rtpParameters: audioRtpParameters });
		const consumer = await transport.consume({ producerId: producer.id, rtpCapabilities: router.rtpCapabilities });
		const ice = once(transport, 'icestatechange');
		const obsIce = once(transport.observer, 'icestatechange');
		node.event(transport.id, 'webRtcTransport', 'icestatechange', ['completed']);
		assert.deepEqual(await ice, ['completed']);
		await obsIce;
		assert.equal(transport.iceState, 'completed');
		const pause = once(consumer, 'producerpause');
		const obsPause = once(consumer.observer, 'pause');
		node.event(consumer.id, 'consumer', 'producerpause', []);
		await Promise.all([pause, obsPause]);
		assert.equal(consumer.producerPaused, true);
		const score = once(producer, 'score');
		node.event(producer.id, 'producer', 'score', [[{ encodingIdx: 0, ssrc: 1, score: 9 }]]);
		await score;
		assert.deepEqual(producer.score, [{ encodingIdx: 0, ssrc: 1, score: 9 }]);
		await transport.connect({ dtlsParameters: { role: 'client', fingerprints: [] } });
		assert.equal(transport.dtlsParameters.role, 'server');
		worker.close();
	});
});

test('a node-side died closes the worker and everything under it', async () => {
	await withNode(mediaHandlers(), async (node, ms) => {
		const worker = await ms.createWorker();
		const router = await worker.createRouter({ mediaCodecs });
		const order = [];
		router.on('workerclose', () => order.push('router:workerclose'));
		worker.observer.on('close', () => order.push('worker:observer.close'));
		const died = new Promise((resolve) =>
			worker.on('died', (error) => {
				order.push('worker:died');
				resolve(error);
			})
		);
		node.event(worker.id, 'worker', 'died', ['boom']);
		const error = await died;
		assert.equal(error.message, 'boom');
		assert.equal(worker.died, true);
		assert.equal(worker.closed, true);
		assert.equal(router.closed, true);
		assert.deepEqual(order, ['router:workerclose', 'worker:died', 'worker:observer.close']);
	});
});

test('calls after a fire-and-forget close wait for it', async () => {
	let closeAnswered = false;
	await withNode(
		mediaHandlers({
			close: () => new Promise((resolve) => setTimeout(() => {
				closeAnswered = true;
				resolve(null);
			}, 100)),
			dump: () => ({ closeAnsweredFirst: closeAnswered }),
		}),
		async (node, ms) => {
			const worker = await ms.createWorker();
			const router = await worker.createRouter({ mediaCodecs });
			const router2 = await worker.createRouter({ mediaCodecs });
			router2.close();
			assert.deepEqual(await router.dump(), { closeAnsweredFirst: true });
			worker.close();
		}
	);
});

test('reconnection: snapshot without the worker closes it (died)', async () => {
	await withNode(mediaHandlers(), async (node, ms) => {
		const worker = await ms.createWorker();
		const router = await worker.createRouter({ mediaCodecs });
		const died = once(worker, 'died');
		node.snapshot = [];
		node.dropConnections();
		await died;
		assert.equal(router.closed, true);
		assert.equal(node.upgrades.length, 2, 'reconnected');
		// The connection works again.
		const worker2 = await ms.createWorker();
		assert.equal(worker2.closed, false);
		worker2.close();
	});
});

test('reconnection: objects in the snapshot stay open', async () => {
	await withNode(mediaHandlers(), async (node, ms) => {
		const worker = await ms.createWorker();
		const router = await worker.createRouter({ mediaCodecs });
		node.snapshot = [
			{ id: worker.id, objectType: 'worker', state: { pid: 4242 } },
			{ id: router.id, objectType: 'router', state: {} },
		];
		node.dropConnections();
		while (node.upgrades.length < 2) {
			await new Promise((r) => setTimeout(r, 20));
		}
		await worker.dump();
		assert.equal(worker.closed, false);
		assert.equal(router.closed, false);
		worker.close();
	});
});

test('calls fail at once while the node is unreachable', async () => {
	const ms = mediasoup.connect('ws://127.0.0.1:9/v1/rope');
	await assert.rejects(ms.createWorker(), /cannot connect/);
});

test('the socket does not keep the process alive once workers are closed', async () => {
	const node = await new FakeNode({}).start();
	try {
		const script = `
			const ms = require(${JSON.stringify(path.join(__dirname, '..', '..'))});
			(async () => {
				const w = await ms.createWorker();
				w.close();
				await new Promise((r) => w.once('subprocessclose', r));
				console.log('done');
			})();
		`;
		const child = spawn(process.execPath, ['-e', script], {
			env: { ...process.env, MAFALDA_NODE_URL: node.url },
			stdio: ['ignore', 'pipe', 'inherit'],
		});
		let out = '';
		child.stdout.on('data', (d) => (out += d));
		const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
		const [code, signal] = await once(child, 'exit');
		clearTimeout(timer);
		assert.equal(signal, null, 'the child had to be killed: something kept it alive');
		assert.equal(code, 0);
		assert.equal(out.trim(), 'done');
	} finally {
		await node.stop();
	}
});

test('module surface', () => {
	assert.equal(typeof mediasoup.createWorker, 'function');
	assert.equal(typeof mediasoup.workerBin, 'string');
	assert.equal(mediasoup.types.TypeError, TypeError);
	const caps = mediasoup.getSupportedRtpCapabilities();
	caps.codecs = 'bar';
	assert.notDeepEqual(mediasoup.getSupportedRtpCapabilities(), caps);
	assert.deepEqual(mediasoup.parseScalabilityMode('L1T3'), { spatialLayers: 1, temporalLayers: 3, ksvc: false });
});

test('events sent before the creation answer are applied once the object exists', async () => {
	let consumerId;
	await withNode(
		mediaHandlers({
			consume: (params) => {
				consumerId = randomUUID();
				return {
					id: consumerId,
					producerId: params.producerId,
					kind: 'audio',
					rtpParameters: audioRtpParameters,
					type: 'simple',
					paused: false,
					producerPaused: false,
					score: { score: 10, producerScore: 0, producerScores: [0] },
					priority: 1,
				};
			},
		}),
		async (node, ms) => {
			const worker = await ms.createWorker();
			const router = await worker.createRouter({ mediaCodecs });
			const transport = await router.createWebRtcTransport({ listenInfos: [{ protocol: 'udp', ip: '127.0.0.1' }] });
			const producer = await transport.produce({ kind: 'audio', rtpParameters: audioRtpParameters });
			// The node's handler runs before it answers: send the event first.
			node.handlers.consume = ((inner) => (params, target) => {
				const result = inner(params, target);
				node.event(consumerId, 'consumer', 'producerpause', []);
				return result;
			})(node.handlers.consume);
			const consumer = await transport.consume({ producerId: producer.id, rtpCapabilities: router.rtpCapabilities });
			const paused = once(consumer, 'producerpause');
			await paused;
			assert.equal(consumer.producerPaused, true);
			worker.close();
		}
	);
});

test('sends go after the calls made before them are answered, and calls after sends', async () => {
	const log = [];
	const delay = (ms) => new Promise((r) => setTimeout(r, ms));
	await withNode(
		mediaHandlers({
			createDirectTransport: () => ({ id: randomUUID() }),
			produceData: () => ({ id: randomUUID(), type: 'direct', label: '', protocol: '', paused: false }),
			consumeData: (params) => ({
				id: randomUUID(),
				dataProducerId: params.dataProducerId,
				type: 'direct',
				label: '',
				protocol: '',
				paused: false,
				dataProducerPaused: false,
				subchannels: [],
			}),
			setSubchannels: async (params) => {
				log.push('setSubchannels received');
				await delay(50);
				log.push('setSubchannels answered');
				return { subchannels: params.subchannels };
			},
			send: async (params) => {
				log.push(`send ${Buffer.from(params.message, 'base64')} received`);
				await delay(20);
				return null;
			},
			pause: () => {
				log.push('pause received');
				return null;
			},
		}),
		async (node, ms) => {
			const worker = await ms.createWorker();
			const router = await worker.createRouter({ mediaCodecs });
			const transport = await router.createDirectTransport();
			const dataProducer = await transport.produceData();
			const dataConsumer = await transport.consumeData({ dataProducerId: dataProducer.id });
			void dataConsumer.setSubchannels([1]);
			dataProducer.send('a');
			dataProducer.send('b');
			await dataProducer.pause();
			assert.deepEqual(log, [
				'setSubchannels received',
				'setSubchannels answered',
				'send a received',
				'send b received',
				'pause received',
			]);
			assert.deepEqual(dataConsumer.subchannels, [1]);
			const sends = node.calls.filter((c) => c.method === 'send');
			assert.deepEqual(sends[0].params, { message: Buffer.from('a').toString('base64'), ppid: 51 });
			worker.close();
		}
	);
});

test('reconnection resumes the session with its token (objects kept)', async () => {
	await withNode(mediaHandlers(), async (node, ms) => {
		node.snapshot = [{ id: 'session', objectType: 'session', state: { token: 'tok-1', graceMs: 15000 } }];
		const worker = await ms.createWorker();
		const router = await worker.createRouter({ mediaCodecs });
		node.snapshot = [
			{ id: 'session', objectType: 'session', state: { token: 'tok-1', graceMs: 15000 } },
			{ id: worker.id, objectType: 'worker', state: { pid: 4242 } },
			{ id: router.id, objectType: 'router', state: {} },
		];
		node.dropConnections();
		while (node.upgrades.length < 2) {
			await new Promise((r) => setTimeout(r, 20));
		}
		assert.match(node.upgrades[1].url, /[?&]format=json&session=tok-1$/);
		await router.dump();
		assert.equal(worker.closed, false);
		assert.equal(router.closed, false);
		worker.close();
	});
});

test('what the app closed while disconnected is closed on the resumed session', async () => {
	await withNode(mediaHandlers(), async (node, ms) => {
		node.snapshot = [{ id: 'session', objectType: 'session', state: { token: 'tok-2', graceMs: 15000 } }];
		const worker = await ms.createWorker();
		const router = await worker.createRouter({ mediaCodecs });
		const orphan = randomUUID();
		node.snapshot = [
			{ id: 'session', objectType: 'session', state: { token: 'tok-2', graceMs: 15000 } },
			{ id: worker.id, objectType: 'worker', state: { pid: 4242 } },
			{ id: router.id, objectType: 'router', state: {} },
			{ id: orphan, objectType: 'router', state: {} },
		];
		node.dropConnections();
		await new Promise((r) => setTimeout(r, 5));
		router.close();
		while (!node.calls.some((c) => c.method === 'close' && c.target === orphan)) {
			await new Promise((r) => setTimeout(r, 20));
		}
		while (!node.calls.some((c) => c.method === 'close' && c.target === router.id)) {
			await new Promise((r) => setTimeout(r, 20));
		}
		assert.equal(worker.closed, false);
		worker.close();
	});
});
