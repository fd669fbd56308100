'use strict';

/**
 * `channelForTesting` (private API): mediasoup's own tests fake a worker
 * notification with `channel.emit(objectId, fbs.Event.X, fbsNotification)`.
 * There is no FlatBuffers channel here; this object turns the few such
 * notifications into the named events the node would send over ROPE. It
 * reads them with @mafalda-sfu/mediasoup-node-fbs, resolved from the current
 * directory (the test runner's), so the client itself does not depend on it.
 */

const path = require('node:path');
const { createRequire } = require('node:module');

let fbs;

function loadFbs() {
	if (fbs !== undefined) {
		return fbs;
	}
	try {
		const req = createRequire(path.join(process.cwd(), 'index.js'));
		fbs = {
			notification: req('@mafalda-sfu/mediasoup-node-fbs/notification'),
			transport: req('@mafalda-sfu/mediasoup-node-fbs/transport'),
			webRtcTransport: req('@mafalda-sfu/mediasoup-node-fbs/web-rtc-transport'),
			producer: req('@mafalda-sfu/mediasoup-node-fbs/producer'),
			consumer: req('@mafalda-sfu/mediasoup-node-fbs/consumer'),
		};
	} catch (_) {
		fbs = null;
	}
	return fbs;
}

const lower = (enumType, value) => String(enumType[value]).toLowerCase();
const undef = (value) => (value === null ? undefined : value);

function tuple(t) {
	return {
		localAddress: t.localAddress,
		localIp: t.localAddress,
		localPort: t.localPort,
		remoteIp: undef(t.remoteIp),
		remotePort: undef(t.remotePort),
		protocol: lower(fbs.transport.Protocol, t.protocol),
	};
}

/** [name, args] of a FlatBuffers notification, or null. */
function translate(event, notification) {
	const f = loadFbs();
	if (!f) {
		return null;
	}
	const body = (Type) => {
		const data = new Type();
		notification.body(data);
		return data.unpack();
	};
	switch (f.notification.Event[event]) {
		case 'WEBRTCTRANSPORT_ICE_STATE_CHANGE':
			return ['icestatechange', [lower(f.webRtcTransport.IceState, body(f.webRtcTransport.IceStateChangeNotification).iceState)]];
		case 'WEBRTCTRANSPORT_ICE_SELECTED_TUPLE_CHANGE':
			return ['iceselectedtuplechange', [tuple(body(f.webRtcTransport.IceSelectedTupleChangeNotification).tuple)]];
		case 'WEBRTCTRANSPORT_DTLS_STATE_CHANGE': {
			const data = body(f.webRtcTransport.DtlsStateChangeNotification);
			return ['dtlsstatechange', [lower(f.webRtcTransport.DtlsState, data.dtlsState), undef(data.remoteCert)]];
		}
		case 'PRODUCER_SCORE':
			return [
				'score',
				[
					body(f.producer.ScoreNotification).scores.map((s) => ({
						encodingIdx: s.encodingIdx,
						ssrc: s.ssrc,
						rid: undef(s.rid),
						score: s.score,
					})),
				],
			];
		case 'CONSUMER_SCORE': {
			const s = body(f.consumer.ScoreNotification).score;
			return ['score', [{ score: s.score, producerScore: s.producerScore, producerScores: [...s.producerScores] }]];
		}
		case 'CONSUMER_PRODUCER_PAUSE':
			return ['producerpause', []];
		case 'CONSUMER_PRODUCER_RESUME':
			return ['producerresume', []];
		case 'CONSUMER_PRODUCER_CLOSE':
			return ['producerclose', []];
		default:
			return null;
	}
}

class TestingChannel {
	#connection;

	constructor(connection) {
		this.#connection = connection;
	}

	emit(objectId, event, notification) {
		const object = this.#connection.objectsForTesting.get(objectId);
		const translated = object ? translate(event, notification) : null;
		if (!translated) {
			return false;
		}
		object._remoteEvent(translated[0], translated[1]);
		return true;
	}
}

const channels = new WeakMap();

function testingChannel(connection) {
	let channel = channels.get(connection);
	if (!channel) {
		channel = new TestingChannel(connection);
		channels.set(connection, channel);
	}
	return channel;
}

module.exports = { testingChannel };
