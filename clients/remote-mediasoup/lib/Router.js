'use strict';

const ortc = require('@mafalda-sfu/mediasoup-ortc');
const { RemoteObject, checkAppData, clone } = require('./RemoteObject');
const { InvalidStateError } = require('./errors');
const {
	WebRtcTransport,
	PlainTransport,
	PipeTransport,
	DirectTransport,
} = require('./transports');
const { ActiveSpeakerObserver, AudioLevelObserver } = require('./RtpObserver');

function withoutAppData(options) {
	const params = { ...options };
	delete params.appData;
	return params;
}

/**
 * Events: 'workerclose', 'listenererror'. Observer: 'close', 'newtransport',
 * 'newrtpobserver'.
 */
class Router extends RemoteObject {
	#rtpCapabilities;
	#transports = new Map();
	#producers = new Map();
	#rtpObservers = new Map();
	#dataProducers = new Map();
	// Pipe transport pairs to other routers, by the other router's id.
	#pipeTransportPairs = new Map();

	constructor(connection, { id, rtpCapabilities }, appData) {
		super(connection, id, appData);
		this.#rtpCapabilities = rtpCapabilities;
	}

	get rtpCapabilities() {
		return this.#rtpCapabilities;
	}

	get transportsForTesting() {
		return this.#transports;
	}

	close() {
		if (!this._markClosed()) {
			return;
		}
		this._sendClose();
		this.#closeChildren();
		this.emit('@close');
		this.observer.safeEmit('close');
	}

	_workerClosed() {
		if (!this._markClosed()) {
			return;
		}
		this.#closeChildren();
		this.emit('@close');
		this.safeEmit('workerclose');
		this.observer.safeEmit('close');
	}

	_remoteClosed() {
		if (!this._markClosed()) {
			return;
		}
		this.#closeChildren();
		this.emit('@close');
		this.observer.safeEmit('close');
	}

	#closeChildren() {
		const transports = [...this.#transports.values()];
		this.#transports.clear();
		for (const transport of transports) {
			transport._routerClosed();
		}
		this.#producers.clear();
		const rtpObservers = [...this.#rtpObservers.values()];
		this.#rtpObservers.clear();
		for (const rtpObserver of rtpObservers) {
			rtpObserver._routerClosed();
		}
		this.#dataProducers.clear();
		this.#pipeTransportPairs.clear();
	}

	async dump() {
		return this._request('dump');
	}

	async createWebRtcTransport(options = {}) {
		const { webRtcServer, listenInfos, listenIps, numSctpStreams, appData } = options || {};
		if (!webRtcServer && !Array.isArray(listenInfos) && !Array.isArray(listenIps)) {
			throw new TypeError('missing webRtcServer, listenInfos and listenIps (one of them is mandatory)');
		} else if (webRtcServer && listenInfos && listenIps) {
			throw new TypeError('only one of webRtcServer, listenInfos and listenIps must be given');
		} else if (
			numSctpStreams &&
			(typeof numSctpStreams.OS !== 'number' || typeof numSctpStreams.MIS !== 'number')
		) {
			throw new TypeError('if given, numSctpStreams must contain OS and MIS');
		}
		checkAppData(appData);
		const params = withoutAppData(options);
		if (webRtcServer) {
			params.webRtcServer = typeof webRtcServer === 'string' ? webRtcServer : webRtcServer.id;
		}
		const data = await this._request('createWebRtcTransport', params);
		const transport = this.#addTransport(new WebRtcTransport(this._connection, data, appData, this.#hooks()));
		if (webRtcServer && typeof webRtcServer === 'object' && typeof webRtcServer.handleWebRtcTransport === 'function') {
			webRtcServer.handleWebRtcTransport(transport);
		}
		return transport;
	}

	async createPlainTransport(options = {}) {
		const { listenInfo, listenIp, appData } = options || {};
		if (!listenInfo && !listenIp) {
			throw new TypeError('missing listenInfo and listenIp (one of them is mandatory)');
		} else if (listenInfo && listenIp) {
			throw new TypeError('only one of listenInfo and listenIp must be given');
		}
		checkAppData(appData);
		const params = withoutAppData(options);
		// mediasoup: a separate RTCP listen address means no RTCP muxing.
		if (params.rtcpListenInfo && params.rtcpMux !== false) {
			params.rtcpMux = false;
		}
		const data = await this._request('createPlainTransport', params);
		return this.#addTransport(new PlainTransport(this._connection, data, appData, this.#hooks()));
	}

	async createPipeTransport(options = {}) {
		const { listenInfo, listenIp, appData } = options || {};
		if (!listenInfo && !listenIp) {
			throw new TypeError('missing listenInfo and listenIp (one of them is mandatory)');
		} else if (listenInfo && listenIp) {
			throw new TypeError('only one of listenInfo and listenIp must be given');
		}
		checkAppData(appData);
		const data = await this._request('createPipeTransport', withoutAppData(options));
		return this.#addTransport(new PipeTransport(this._connection, data, appData, this.#hooks()));
	}

	async createDirectTransport(options = {}) {
		const { maxMessageSize, appData } = options || {};
		if (maxMessageSize !== undefined && (typeof maxMessageSize !== 'number' || maxMessageSize < 0)) {
			throw new TypeError('if given, maxMessageSize must be a positive number');
		}
		checkAppData(appData);
		const data = await this._request('createDirectTransport', withoutAppData(options));
		return this.#addTransport(new DirectTransport(this._connection, data, appData, this.#hooks()));
	}

	async createActiveSpeakerObserver(options = {}) {
		const { interval, appData } = options || {};
		if (interval !== undefined && typeof interval !== 'number') {
			throw new TypeError('if given, interval must be a number');
		}
		checkAppData(appData);
		const data = await this._request('createActiveSpeakerObserver', withoutAppData(options));
		return this.#addRtpObserver(new ActiveSpeakerObserver(this._connection, data, appData, this.#hooks()));
	}

	async createAudioLevelObserver(options = {}) {
		const { maxEntries, threshold, interval, appData } = options || {};
		if (maxEntries !== undefined && (typeof maxEntries !== 'number' || maxEntries <= 0)) {
			throw new TypeError('if given, maxEntries must be a positive number');
		} else if (threshold !== undefined && (typeof threshold !== 'number' || threshold < -127 || threshold > 0)) {
			throw new TypeError('if given, threshole must be a negative number greater than -127');
		} else if (interval !== undefined && typeof interval !== 'number') {
			throw new TypeError('if given, interval must be an number');
		}
		checkAppData(appData);
		const data = await this._request('createAudioLevelObserver', withoutAppData(options));
		return this.#addRtpObserver(new AudioLevelObserver(this._connection, data, appData, this.#hooks()));
	}

	/**
	 * Whether a consumer with `rtpCapabilities` can consume the producer:
	 * decided here, from the producer's consumable RTP parameters.
	 */
	canConsume({ producerId, rtpCapabilities }) {
		const producer = this.#producers.get(producerId);
		if (!producer) {
			return false;
		}
		try {
			return ortc.canConsume(producer.consumableRtpParameters, clone(rtpCapabilities));
		} catch (_) {
			return false;
		}
	}

	/**
	 * Pipes a producer or data producer of this router into another router of
	 * this app, over a pair of pipe transports (made once per router pair),
	 * as mediasoup's Router.pipeToRouter() does.
	 */
	async pipeToRouter({
		producerId,
		dataProducerId,
		router,
		listenInfo,
		listenIp,
		enableSctp = true,
		numSctpStreams = { OS: 1024, MIS: 1024 },
		enableRtx = false,
		enableSrtp = false,
	} = {}) {
		if (listenInfo && listenIp) {
			throw new TypeError('only one of listenInfo and listenIp must be given');
		} else if (!producerId && !dataProducerId) {
			throw new TypeError('missing producerId or dataProducerId');
		} else if (producerId && dataProducerId) {
			throw new TypeError('just producerId or dataProducerId can be given');
		} else if (!router) {
			throw new TypeError('Router not found');
		} else if (router === this) {
			throw new TypeError('cannot use this Router as destination');
		}
		if (!listenInfo) {
			if (listenIp) {
				const ip = typeof listenIp === 'string' ? { ip: listenIp } : listenIp;
				listenInfo = { protocol: 'udp', ip: ip.ip, announcedAddress: ip.announcedIp };
			} else {
				listenInfo = { protocol: 'udp', ip: '127.0.0.1' };
			}
		}
		let producer;
		let dataProducer;
		if (producerId) {
			producer = this.#producers.get(producerId);
			if (!producer) {
				throw new TypeError('Producer not found');
			}
		} else {
			dataProducer = this.#dataProducers.get(dataProducerId);
			if (!dataProducer) {
				throw new TypeError('DataProducer not found');
			}
		}
		const { local, remote } = await this.#pipeTransportPair(router, {
			listenInfo,
			enableSctp,
			numSctpStreams,
			enableRtx,
			enableSrtp,
		});
		if (producer) {
			let pipeConsumer;
			let pipeProducer;
			try {
				pipeConsumer = await local.consume({ producerId });
				pipeProducer = await remote.produce({
					id: producer.id,
					kind: pipeConsumer.kind,
					rtpParameters: pipeConsumer.rtpParameters,
					paused: pipeConsumer.producerPaused,
					appData: producer.appData,
				});
				if (producer.closed) {
					throw new InvalidStateError('original Producer closed');
				}
				if (pipeProducer.paused !== producer.paused) {
					if (producer.paused) {
						await pipeProducer.pause();
					} else {
						await pipeProducer.resume();
					}
				}
				pipeConsumer.observer.on('close', () => pipeProducer.close());
				pipeConsumer.observer.on('pause', () => pipeProducer.pause().catch(() => {}));
				pipeConsumer.observer.on('resume', () => pipeProducer.resume().catch(() => {}));
				pipeProducer.observer.on('close', () => pipeConsumer.close());
				return { pipeConsumer, pipeProducer };
			} catch (error) {
				pipeConsumer?.close();
				pipeProducer?.close();
				throw error;
			}
		}
		let pipeDataConsumer;
		let pipeDataProducer;
		try {
			pipeDataConsumer = await local.consumeData({ dataProducerId });
			pipeDataProducer = await remote.produceData({
				id: dataProducer.id,
				sctpStreamParameters: pipeDataConsumer.sctpStreamParameters,
				label: pipeDataConsumer.label,
				protocol: pipeDataConsumer.protocol,
				appData: dataProducer.appData,
			});
			if (dataProducer.closed) {
				throw new InvalidStateError('original DataProducer closed');
			}
			pipeDataConsumer.observer.on('close', () => pipeDataProducer.close());
			pipeDataProducer.observer.on('close', () => pipeDataConsumer.close());
			return { pipeDataConsumer, pipeDataProducer };
		} catch (error) {
			pipeDataConsumer?.close();
			pipeDataProducer?.close();
			throw error;
		}
	}

	/** @private The other router's side of a pipe transport pair. */
	_addPipeTransportPair(key, pairPromise) {
		if (this.#pipeTransportPairs.has(key)) {
			throw new Error('given pipeTransportPairKey already exists in this Router');
		}
		this.#pipeTransportPairs.set(key, pairPromise);
		pairPromise.then(
			(pair) => pair.remote.observer.on('close', () => this.#pipeTransportPairs.delete(key)),
			() => this.#pipeTransportPairs.delete(key)
		);
	}

	async #pipeTransportPair(router, options) {
		const key = router.id;
		let pairPromise = this.#pipeTransportPairs.get(key);
		if (!pairPromise) {
			pairPromise = (async () => {
				let local;
				let remote;
				try {
					[local, remote] = await Promise.all([
						this.createPipeTransport(options),
						router.createPipeTransport(options),
					]);
					await Promise.all([
						local.connect({
							ip: remote.tuple.localAddress ?? remote.tuple.localIp,
							port: remote.tuple.localPort,
							srtpParameters: remote.srtpParameters,
						}),
						remote.connect({
							ip: local.tuple.localAddress ?? local.tuple.localIp,
							port: local.tuple.localPort,
							srtpParameters: local.srtpParameters,
						}),
					]);
				} catch (error) {
					local?.close();
					remote?.close();
					this.#pipeTransportPairs.delete(key);
					throw error;
				}
				local.observer.on('close', () => {
					remote.close();
					this.#pipeTransportPairs.delete(key);
				});
				remote.observer.on('close', () => {
					local.close();
					this.#pipeTransportPairs.delete(key);
				});
				return { local, remote };
			})();
			this.#pipeTransportPairs.set(key, pairPromise);
			// The other router sees the same pair from its side.
			router._addPipeTransportPair(
				this.id,
				pairPromise.then(({ local, remote }) => ({ local: remote, remote: local }))
			);
		}
		return pairPromise;
	}

	#hooks() {
		return {
			getRouterRtpCapabilities: () => this.#rtpCapabilities,
			getProducerById: (id) => this.#producers.get(id),
			getDataProducerById: (id) => this.#dataProducers.get(id),
		};
	}

	#addTransport(transport) {
		if (this.closed) {
			transport._routerClosed();
			throw new InvalidStateError('Router closed');
		}
		this.#transports.set(transport.id, transport);
		transport.on('@close', () => this.#transports.delete(transport.id));
		transport.on('@listenserverclose', () => this.#transports.delete(transport.id));
		transport.on('@newproducer', (producer) => this.#producers.set(producer.id, producer));
		transport.on('@producerclose', (producer) => this.#producers.delete(producer.id));
		transport.on('@newdataproducer', (dataProducer) => this.#dataProducers.set(dataProducer.id, dataProducer));
		transport.on('@dataproducerclose', (dataProducer) => this.#dataProducers.delete(dataProducer.id));
		this.observer.safeEmit('newtransport', transport);
		return transport;
	}

	#addRtpObserver(rtpObserver) {
		if (this.closed) {
			rtpObserver._routerClosed();
			throw new InvalidStateError('Router closed');
		}
		this.#rtpObservers.set(rtpObserver.id, rtpObserver);
		rtpObserver.on('@close', () => this.#rtpObservers.delete(rtpObserver.id));
		this.observer.safeEmit('newrtpobserver', rtpObserver);
		return rtpObserver;
	}
}

module.exports = { Router };
