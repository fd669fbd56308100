'use strict';

/**
 * mediasoup's Node API, served by a Mafalda Swarm node over ROPE: use it
 * where an app has require('mediasoup').
 *
 * The node is MAFALDA_NODE_URL (e.g. ws://127.0.0.1:7700/v1/rope), with the
 * bearer token MAFALDA_NODE_TOKEN; connect(url, options) gives a module of
 * the same shape on a connection of its own.
 */

const { supportedRtpCapabilities } = require('@mafalda-sfu/mediasoup-ortc/supportedRtpCapabilities');
const { parse: parseScalabilityMode } = require('@mafalda-sfu/scalabilitymodes');
const { EnhancedEventEmitter } = require('./lib/EnhancedEventEmitter');
const { Connection } = require('./lib/Connection');
const { UnsupportedError, InvalidStateError } = require('./lib/errors');
const { checkAppData, clone } = require('./lib/RemoteObject');
const { Worker } = require('./lib/Worker');
const { WebRtcServer } = require('./lib/WebRtcServer');
const { Router } = require('./lib/Router');
const {
	Transport,
	WebRtcTransport,
	PlainTransport,
	PipeTransport,
	DirectTransport,
} = require('./lib/transports');
const { Producer } = require('./lib/Producer');
const { Consumer } = require('./lib/Consumer');
const { DataProducer } = require('./lib/DataProducer');
const { DataConsumer } = require('./lib/DataConsumer');
const { RtpObserver, ActiveSpeakerObserver, AudioLevelObserver } = require('./lib/RtpObserver');

/** The mediasoup Node API version this client mirrors. */
const version = '3.14.7';

const types = Object.freeze({
	Worker,
	WebRtcServer,
	Router,
	Transport,
	WebRtcTransport,
	PlainTransport,
	PipeTransport,
	DirectTransport,
	Producer,
	Consumer,
	DataProducer,
	DataConsumer,
	RtpObserver,
	ActiveSpeakerObserver,
	AudioLevelObserver,
	EnhancedEventEmitter,
	TypeError,
	UnsupportedError,
	InvalidStateError,
	// mediasoup exports these as TypeScript types only; nothing at run time.
	WorkerEvents: undefined,
	RouterEvents: undefined,
});

const WORKER_SETTINGS = [
	'logLevel',
	'logTags',
	'rtcMinPort',
	'rtcMaxPort',
	'dtlsCertificateFile',
	'dtlsPrivateKeyFile',
	'libwebrtcFieldTrials',
	'disableLiburing',
];

function getSupportedRtpCapabilities() {
	return clone(supportedRtpCapabilities);
}

/**
 * A module object (createWorker, observer, ...) over the connection that
 * getConnection() gives (made on the first call).
 */
function createModule(getConnection, { url } = {}) {
	const observer = new EnhancedEventEmitter();
	let connection;

	const connectionOf = () => {
		if (!connection) {
			connection = getConnection();
		}
		return connection;
	};

	async function createWorker(settings = {}) {
		const { appData, node } = settings || {};
		checkAppData(appData);
		const params = {};
		for (const key of WORKER_SETTINGS) {
			if (settings[key] !== undefined) {
				params[key] = settings[key];
			}
		}
		const peer = node ?? process.env.MAFALDA_WORKER_NODE;
		if (peer) {
			params.node = peer;
		}
		const conn = connectionOf();
		const data = await conn.request('mediasoup.createWorker', null, params);
		const worker = new Worker(conn, data, appData);
		observer.safeEmit('newworker', worker);
		return worker;
	}

	const mod = {
		version,
		types,
		observer,
		createWorker,
		getSupportedRtpCapabilities,
		parseScalabilityMode,
		connect,
		/** Where the workers run (any string; mediasoup's is a file path). */
		get workerBin() {
			return `mafalda-node:${url || process.env.MAFALDA_NODE_URL || 'unset'}`;
		},
		/** The node's own mediasoup version (mediasoup.version on the node). */
		async getNodeVersion() {
			const result = await connectionOf().request('mediasoup.version', null, null);
			return result && typeof result === 'object' ? result.version : result;
		},
		/** The node worker's RTP capabilities (asynchronous, from the node). */
		async getNodeRtpCapabilities() {
			return connectionOf().request('mediasoup.getSupportedRtpCapabilities', null, null);
		},
		/** Closes this module's connection (the node closes what it made). */
		close() {
			if (connection) {
				connection.close();
			}
		},
	};
	return mod;
}

/**
 * A module of the same shape on a connection of its own to `url`.
 * options: {token, headers, timeout}.
 */
function connect(url, options = {}) {
	if (!url) {
		throw new TypeError('connect() needs the node URL (ws://HOST:PORT/v1/rope)');
	}
	return createModule(() => new Connection(url, options), { url });
}

module.exports = createModule(() =>
	new Connection(process.env.MAFALDA_NODE_URL, { token: process.env.MAFALDA_NODE_TOKEN })
);
