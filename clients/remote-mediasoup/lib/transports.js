'use strict';

const { RemoteObject, checkAppData, clone } = require('./RemoteObject');
const { InvalidStateError } = require('./errors');
const { Producer } = require('./Producer');
const { Consumer } = require('./Consumer');
const { DataProducer } = require('./DataProducer');
const { DataConsumer } = require('./DataConsumer');

const undef = (value) => (value === null ? undefined : value);

function checkTraceTypes(types) {
	if (!Array.isArray(types)) {
		throw new TypeError('types must be an array');
	}
	if (types.find((type) => typeof type !== 'string')) {
		throw new TypeError('every type must be a string');
	}
}

/**
 * What every transport shares. Events: 'routerclose', 'listenserverclose'
 * (WebRTC with a WebRtcServer), 'trace', 'listenererror'. Observer: 'close',
 * 'newproducer', 'newconsumer', 'newdataproducer', 'newdataconsumer',
 * 'trace'.
 */
class Transport extends RemoteObject {
	#hooks;
	#producers = new Map();
	#consumers = new Map();
	#dataProducers = new Map();
	#dataConsumers = new Map();

	constructor(connection, id, appData, hooks) {
		super(connection, id, appData);
		this.#hooks = hooks;
	}

	close() {
		if (!this._markClosed()) {
			return;
		}
		this._setClosedState();
		this._sendClose();
		this.#closeChildren();
		this.emit('@close');
		this.observer.safeEmit('close');
	}

	_routerClosed() {
		if (!this._markClosed()) {
			return;
		}
		this._setClosedState();
		this.#closeChildren();
		this.safeEmit('routerclose');
		this.observer.safeEmit('close');
	}

	_listenServerClosed() {
		if (!this._markClosed()) {
			return;
		}
		this._setClosedState();
		this.#closeChildren();
		this.emit('@listenserverclose');
		this.safeEmit('listenserverclose');
		this.observer.safeEmit('close');
	}

	_remoteClosed() {
		if (!this._markClosed()) {
			return;
		}
		this._setClosedState();
		this.#closeChildren();
		this.emit('@close');
		this.observer.safeEmit('close');
	}

	_setClosedState() {}

	#closeChildren() {
		for (const producer of [...this.#producers.values()]) {
			producer._transportClosed();
			this.emit('@producerclose', producer);
		}
		this.#producers.clear();
		for (const consumer of [...this.#consumers.values()]) {
			consumer._transportClosed();
		}
		this.#consumers.clear();
		for (const dataProducer of [...this.#dataProducers.values()]) {
			dataProducer._transportClosed();
			this.emit('@dataproducerclose', dataProducer);
		}
		this.#dataProducers.clear();
		for (const dataConsumer of [...this.#dataConsumers.values()]) {
			dataConsumer._transportClosed();
		}
		this.#dataConsumers.clear();
	}

	_remoteEvent(name, args) {
		if (name === 'trace') {
			this.safeEmit('trace', args[0]);
			this.observer.safeEmit('trace', args[0]);
		}
	}

	async dump() {
		return this._request('dump');
	}

	async getStats() {
		return this._request('getStats');
	}

	async connect(params) {
		return this._request('connect', params);
	}

	async setMaxIncomingBitrate(bitrate) {
		await this._request('setMaxIncomingBitrate', { bitrate });
	}

	async setMaxOutgoingBitrate(bitrate) {
		await this._request('setMaxOutgoingBitrate', { bitrate });
	}

	async setMinOutgoingBitrate(bitrate) {
		await this._request('setMinOutgoingBitrate', { bitrate });
	}

	async enableTraceEvent(types = []) {
		checkTraceTypes(types);
		await this._request('enableTraceEvent', { types });
	}

	async produce(options = {}) {
		const { id, kind, rtpParameters, appData } = options || {};
		if (id && this.#producers.has(id)) {
			throw new TypeError(`a Producer with same id "${id}" already exists`);
		} else if (!['audio', 'video'].includes(kind)) {
			throw new TypeError(`invalid kind "${kind}"`);
		} else if (!rtpParameters || typeof rtpParameters !== 'object') {
			throw new TypeError('missing rtpParameters');
		}
		checkAppData(appData);
		const params = { ...options };
		delete params.appData;
		const data = await this._request('produce', params);
		this.#checkOpen();
		const producer = new Producer(this._connection, data, appData);
		this.#producers.set(producer.id, producer);
		producer.on('@close', () => {
			this.#producers.delete(producer.id);
			this.emit('@producerclose', producer);
		});
		this.emit('@newproducer', producer);
		this.observer.safeEmit('newproducer', producer);
		return producer;
	}

	async consume(options = {}) {
		const { producerId, mid, appData } = options || {};
		if (!producerId || typeof producerId !== 'string') {
			throw new TypeError('missing producerId');
		} else if (mid && (typeof mid !== 'string' || mid.length === 0)) {
			throw new TypeError('if given, mid must be non empty string');
		}
		checkAppData(appData);
		if (!this.#hooks.getProducerById(producerId)) {
			throw new Error(`Producer with id "${producerId}" not found`);
		}
		const params = { ...options };
		delete params.appData;
		const data = await this._request('consume', params);
		this.#checkOpen();
		const consumer = new Consumer(this._connection, data, appData);
		this.#consumers.set(consumer.id, consumer);
		consumer.on('@close', () => this.#consumers.delete(consumer.id));
		consumer.on('@producerclose', () => this.#consumers.delete(consumer.id));
		this.observer.safeEmit('newconsumer', consumer);
		return consumer;
	}

	async produceData(options = {}) {
		const { id, appData } = options || {};
		if (id && this.#dataProducers.has(id)) {
			throw new TypeError(`a DataProducer with same id "${id}" already exists`);
		}
		checkAppData(appData);
		const params = { ...options };
		delete params.appData;
		const data = await this._request('produceData', params);
		this.#checkOpen();
		const dataProducer = new DataProducer(this._connection, data, appData);
		this.#dataProducers.set(dataProducer.id, dataProducer);
		dataProducer.on('@close', () => {
			this.#dataProducers.delete(dataProducer.id);
			this.emit('@dataproducerclose', dataProducer);
		});
		this.emit('@newdataproducer', dataProducer);
		this.observer.safeEmit('newdataproducer', dataProducer);
		return dataProducer;
	}

	async consumeData(options = {}) {
		const { dataProducerId, appData } = options || {};
		if (!dataProducerId || typeof dataProducerId !== 'string') {
			throw new TypeError('missing dataProducerId');
		}
		checkAppData(appData);
		if (!this.#hooks.getDataProducerById(dataProducerId)) {
			throw new Error(`DataProducer with id "${dataProducerId}" not found`);
		}
		const params = { ...options };
		delete params.appData;
		const data = await this._request('consumeData', params);
		this.#checkOpen();
		const dataConsumer = new DataConsumer(this._connection, data, appData);
		this.#dataConsumers.set(dataConsumer.id, dataConsumer);
		dataConsumer.on('@close', () => this.#dataConsumers.delete(dataConsumer.id));
		dataConsumer.on('@dataproducerclose', () => this.#dataConsumers.delete(dataConsumer.id));
		this.observer.safeEmit('newdataconsumer', dataConsumer);
		return dataConsumer;
	}

	#checkOpen() {
		if (this.closed) {
			throw new InvalidStateError(`${this.constructor.name} closed`);
		}
	}
}

const DTLS_LOCAL_ROLE = { client: 'server', server: 'client', auto: 'client' };

/**
 * Events: 'icestatechange', 'iceselectedtuplechange', 'dtlsstatechange',
 * 'sctpstatechange' (+ Transport's); the observer mirrors them.
 */
class WebRtcTransport extends Transport {
	#data;

	constructor(connection, data, appData, hooks) {
		super(connection, data.id, appData, hooks);
		this.#data = {
			iceRole: data.iceRole,
			iceParameters: data.iceParameters,
			iceCandidates: data.iceCandidates,
			iceState: data.iceState,
			iceSelectedTuple: undef(data.iceSelectedTuple),
			dtlsParameters: data.dtlsParameters,
			dtlsState: data.dtlsState,
			dtlsRemoteCert: undef(data.dtlsRemoteCert),
			sctpParameters: undef(data.sctpParameters),
			sctpState: undef(data.sctpState),
		};
	}

	get iceRole() {
		return this.#data.iceRole;
	}

	get iceParameters() {
		return this.#data.iceParameters;
	}

	get iceCandidates() {
		return this.#data.iceCandidates;
	}

	get iceState() {
		return this.#data.iceState;
	}

	get iceSelectedTuple() {
		return this.#data.iceSelectedTuple;
	}

	get dtlsParameters() {
		return this.#data.dtlsParameters;
	}

	get dtlsState() {
		return this.#data.dtlsState;
	}

	get dtlsRemoteCert() {
		return this.#data.dtlsRemoteCert;
	}

	get sctpParameters() {
		return this.#data.sctpParameters;
	}

	get sctpState() {
		return this.#data.sctpState;
	}

	_setClosedState() {
		this.#data.iceState = 'closed';
		this.#data.iceSelectedTuple = undefined;
		this.#data.dtlsState = 'closed';
		if (this.#data.sctpState) {
			this.#data.sctpState = 'closed';
		}
	}

	async connect({ dtlsParameters } = {}) {
		const result = await this._request('connect', { dtlsParameters });
		const role =
			(result && result.dtlsLocalRole) || DTLS_LOCAL_ROLE[dtlsParameters && dtlsParameters.role];
		if (role && this.#data.dtlsParameters) {
			this.#data.dtlsParameters.role = role;
		}
	}

	async restartIce() {
		const result = await this._request('restartIce');
		const iceParameters = result && result.iceParameters ? result.iceParameters : result;
		this.#data.iceParameters = iceParameters;
		return iceParameters;
	}

	_applyState(state) {
		for (const key of ['iceState', 'iceSelectedTuple', 'dtlsState', 'sctpState', 'dtlsRemoteCert']) {
			if (key in state) {
				this.#data[key] = undef(state[key]);
			}
		}
	}

	_remoteEvent(name, args) {
		const value = undef(args[0]);
		switch (name) {
			case 'icestatechange':
				this.#data.iceState = value;
				break;
			case 'iceselectedtuplechange':
				this.#data.iceSelectedTuple = value;
				break;
			case 'dtlsstatechange':
				this.#data.dtlsState = value;
				if (value === 'connected' && args[1] !== undefined) {
					this.#data.dtlsRemoteCert = args[1];
				}
				break;
			case 'sctpstatechange':
				this.#data.sctpState = value;
				break;
			default:
				super._remoteEvent(name, args);
				return;
		}
		this.safeEmit(name, value);
		this.observer.safeEmit(name, value);
	}
}

/**
 * Events: 'tuple', 'rtcptuple', 'sctpstatechange' (+ Transport's); the
 * observer mirrors them.
 */
class PlainTransport extends Transport {
	#data;

	constructor(connection, data, appData, hooks) {
		super(connection, data.id, appData, hooks);
		this.#data = {
			rtcpMux: data.rtcpMux,
			comedia: data.comedia,
			tuple: data.tuple,
			rtcpTuple: undef(data.rtcpTuple),
			sctpParameters: undef(data.sctpParameters),
			sctpState: undef(data.sctpState),
			srtpParameters: undef(data.srtpParameters),
		};
	}

	get tuple() {
		return this.#data.tuple;
	}

	get rtcpTuple() {
		return this.#data.rtcpTuple;
	}

	get sctpParameters() {
		return this.#data.sctpParameters;
	}

	get sctpState() {
		return this.#data.sctpState;
	}

	get srtpParameters() {
		return this.#data.srtpParameters;
	}

	_setClosedState() {
		if (this.#data.sctpState) {
			this.#data.sctpState = 'closed';
		}
	}

	async connect({ ip, port, rtcpPort, srtpParameters } = {}) {
		const result = await this._request('connect', { ip, port, rtcpPort, srtpParameters });
		// The node answers the tuples the worker settled on; without them,
		// what the worker does: the remote end is the one given.
		if (result && result.tuple) {
			this.#data.tuple = result.tuple;
		} else if (ip !== undefined && port !== undefined && this.#data.tuple) {
			this.#data.tuple = { ...this.#data.tuple, remoteIp: ip, remotePort: port };
		}
		if (result && result.rtcpTuple) {
			this.#data.rtcpTuple = result.rtcpTuple;
		} else if (ip !== undefined && rtcpPort !== undefined && this.#data.rtcpTuple) {
			this.#data.rtcpTuple = { ...this.#data.rtcpTuple, remoteIp: ip, remotePort: rtcpPort };
		}
		if (result && result.srtpParameters) {
			this.#data.srtpParameters = result.srtpParameters;
		} else if (srtpParameters) {
			this.#data.srtpParameters = clone(srtpParameters);
		}
	}

	_applyState(state) {
		for (const key of ['tuple', 'rtcpTuple', 'sctpState']) {
			if (key in state && (key !== 'tuple' || state.tuple)) {
				this.#data[key] = undef(state[key]);
			}
		}
	}

	_remoteEvent(name, args) {
		const value = undef(args[0]);
		switch (name) {
			case 'tuple':
				this.#data.tuple = value;
				break;
			case 'rtcptuple':
				this.#data.rtcpTuple = value;
				break;
			case 'sctpstatechange':
				this.#data.sctpState = value;
				break;
			default:
				super._remoteEvent(name, args);
				return;
		}
		this.safeEmit(name, value);
		this.observer.safeEmit(name, value);
	}
}

/**
 * Events: 'sctpstatechange' (+ Transport's); the observer mirrors it.
 * consume() takes only {producerId, appData}.
 */
class PipeTransport extends Transport {
	#data;

	constructor(connection, data, appData, hooks) {
		super(connection, data.id, appData, hooks);
		this.#data = {
			tuple: data.tuple,
			sctpParameters: undef(data.sctpParameters),
			sctpState: undef(data.sctpState),
			rtx: data.rtx,
			srtpParameters: undef(data.srtpParameters),
		};
	}

	get tuple() {
		return this.#data.tuple;
	}

	get sctpParameters() {
		return this.#data.sctpParameters;
	}

	get sctpState() {
		return this.#data.sctpState;
	}

	get srtpParameters() {
		return this.#data.srtpParameters;
	}

	_setClosedState() {
		if (this.#data.sctpState) {
			this.#data.sctpState = 'closed';
		}
	}

	async connect({ ip, port, srtpParameters } = {}) {
		const result = await this._request('connect', { ip, port, srtpParameters });
		if (result && result.tuple) {
			this.#data.tuple = result.tuple;
		} else if (ip !== undefined && port !== undefined && this.#data.tuple) {
			this.#data.tuple = { ...this.#data.tuple, remoteIp: ip, remotePort: port };
		}
	}

	async consume({ producerId, appData } = {}) {
		return super.consume({ producerId, appData });
	}

	_applyState(state) {
		for (const key of ['tuple', 'sctpState']) {
			if (key in state && (key !== 'tuple' || state.tuple)) {
				this.#data[key] = undef(state[key]);
			}
		}
	}

	_remoteEvent(name, args) {
		if (name === 'sctpstatechange') {
			const value = undef(args[0]);
			this.#data.sctpState = value;
			this.safeEmit(name, value);
			this.observer.safeEmit(name, value);
			return;
		}
		super._remoteEvent(name, args);
	}
}

/**
 * Events: 'rtcp' (Buffer) (+ Transport's). sendRtcp(Buffer).
 */
class DirectTransport extends Transport {
	constructor(connection, data, appData, hooks) {
		super(connection, data.id, appData, hooks);
	}

	async connect() {
		// Nothing to connect (as in mediasoup).
	}

	async setMaxIncomingBitrate() {
		throw new Error('setMaxIncomingBitrate() not implemented in DirectTransport');
	}

	async setMaxOutgoingBitrate() {
		throw new Error('setMaxOutgoingBitrate() not implemented in DirectTransport');
	}

	async setMinOutgoingBitrate() {
		throw new Error('setMinOutgoingBitrate() not implemented in DirectTransport');
	}

	sendRtcp(rtcpPacket) {
		if (!Buffer.isBuffer(rtcpPacket)) {
			throw new TypeError('rtcpPacket must be a Buffer');
		}
		if (this.closed) {
			throw new InvalidStateError('DirectTransport closed');
		}
		this._connection.notify('sendRtcp', this.objectId, { packet: rtcpPacket.toString('base64') });
	}

	_remoteEvent(name, args) {
		if (name === 'rtcp') {
			this.safeEmit('rtcp', Buffer.from(String(args[0] ?? ''), 'base64'));
			return;
		}
		super._remoteEvent(name, args);
	}
}

module.exports = { Transport, WebRtcTransport, PlainTransport, PipeTransport, DirectTransport };
