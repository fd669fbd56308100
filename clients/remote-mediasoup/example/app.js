'use strict';

// A small mediasoup app: a VP8 track comes in as plain RTP (e.g. from ffmpeg)
// and a browser plays it over WebRTC with mediasoup-client. It is written
// against mediasoup's npm API; this directory's package.json maps "mediasoup"
// to remote-mediasoup (file:..), so the same code runs its workers on a
// Mafalda Swarm node (MAFALDA_NODE_URL=ws://HOST:PORT/v1/rope).
//
// On start it prints one JSON line: the page's URL and where to send RTP.

const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');
const mediasoup = require('mediasoup');

// The RTP sender must use these (ffmpeg: -ssrc 1111 -payload_type 101):
// a plain transport has no signalling to learn them from.
const VIDEO_SSRC = 1111;
const VIDEO_PT = 101;

const mediaCodecs = [
	{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
	{ kind: 'video', mimeType: 'video/VP8', clockRate: 90000 },
];

// The page's bundler and mediasoup-client: the repository's browser test
// packages (tests/browser/node_modules), so the example adds no npm
// dependency of its own. BROWSER_MODULES points elsewhere if need be.
const browserModules =
	process.env.BROWSER_MODULES || path.join(__dirname, '../../../tests/browser/node_modules');

async function bundlePage() {
	const esbuild = require(path.join(browserModules, 'esbuild'));
	const result = await esbuild.build({
		entryPoints: [path.join(__dirname, 'page/app.js')],
		bundle: true,
		format: 'esm',
		write: false,
		nodePaths: [browserModules],
		logLevel: 'error',
	});
	return {
		'/': { type: 'text/html', body: fs.readFileSync(path.join(__dirname, 'page/index.html')) },
		'/app.js': { type: 'text/javascript', body: result.outputFiles[0].contents },
	};
}

async function main() {
	const worker = await mediasoup.createWorker({ logLevel: 'warn' });
	worker.on('died', () => {
		console.error('mediasoup worker died');
		process.exit(1);
	});
	const router = await worker.createRouter({ mediaCodecs });

	// comedia: the transport learns the sender's address from its first
	// packet, so ffmpeg needs only our port; rtcpMux: RTCP on that port too.
	const plain = await router.createPlainTransport({
		listenInfo: { protocol: 'udp', ip: '127.0.0.1' },
		comedia: true,
		rtcpMux: true,
	});
	const producer = await plain.produce({
		kind: 'video',
		rtpParameters: {
			codecs: [{ mimeType: 'video/VP8', clockRate: 90000, payloadType: VIDEO_PT }],
			encodings: [{ ssrc: VIDEO_SSRC }],
		},
	});

	// The page's transports and consumers, by id.
	const transports = new Map();
	const consumers = new Map();

	// The signalling: the page POSTs {method, ...} as JSON to /signal.
	const signal = {
		rtpCapabilities: () => router.rtpCapabilities,
		async createTransport() {
			const transport = await router.createWebRtcTransport({
				listenInfos: [{ protocol: 'udp', ip: '127.0.0.1' }],
			});
			transports.set(transport.id, transport);
			const { id, iceParameters, iceCandidates, dtlsParameters } = transport;
			return { id, iceParameters, iceCandidates, dtlsParameters };
		},
		async connect({ transportId, dtlsParameters }) {
			await transports.get(transportId).connect({ dtlsParameters });
			return {};
		},
		async consume({ transportId, rtpCapabilities }) {
			if (!router.canConsume({ producerId: producer.id, rtpCapabilities })) {
				throw new Error('this browser cannot play VP8');
			}
			// Paused until the page has its track, so the first keyframe it
			// asks for on resume is not spent before it can decode it.
			const consumer = await transports
				.get(transportId)
				.consume({ producerId: producer.id, rtpCapabilities, paused: true });
			consumers.set(consumer.id, consumer);
			const { id, kind, rtpParameters } = consumer;
			return { id, producerId: producer.id, kind, rtpParameters };
		},
		async resume({ consumerId }) {
			await consumers.get(consumerId).resume();
			return {};
		},
	};

	const files = await bundlePage();
	const server = http.createServer(async (request, response) => {
		const reply = (status, type, body) => response.writeHead(status, { 'content-type': type }).end(body);
		if (request.method === 'POST' && request.url === '/signal') {
			let text = '';
			for await (const chunk of request) text += chunk;
			try {
				const { method, ...params } = JSON.parse(text);
				if (!Object.hasOwn(signal, method)) throw new Error(`no such method: ${method}`);
				reply(200, 'application/json', JSON.stringify(await signal[method](params)));
			} catch (error) {
				reply(400, 'application/json', JSON.stringify({ error: error.message }));
			}
			return;
		}
		const file = files[request.url.split('?')[0]];
		if (file) reply(200, file.type, file.body);
		else reply(404, 'text/plain', 'not found');
	});
	const port = Number(process.env.PORT || 0);
	server.listen(port, '127.0.0.1', () => {
		console.log(
			JSON.stringify({
				page: `http://127.0.0.1:${server.address().port}/`,
				rtp: { ip: '127.0.0.1', port: plain.tuple.localPort, ssrc: VIDEO_SSRC, payloadType: VIDEO_PT },
			})
		);
	});

	// Ctrl-C or SIGTERM: close the worker (and with it everything it made).
	const stop = () => {
		server.close();
		worker.close();
		process.exit(0);
	};
	process.on('SIGINT', stop);
	process.on('SIGTERM', stop);
}

main().catch((error) => {
	console.error(error);
	process.exit(1);
});
