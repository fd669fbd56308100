'use strict';

const { LeafObject } = require('./RemoteObject');
const { InvalidStateError } = require('./errors');

const undef = (value) => (value === null ? undefined : value);

/**
 * The bytes and PPID a DataProducer/DataConsumer send() puts on the wire
 * (mediasoup's rules: 51 string, 53 binary, 56/57 when empty).
 */
function encodeMessage(message, ppid) {
	if (typeof message !== 'string' && !Buffer.isBuffer(message)) {
		throw new TypeError('message must be a string or a Buffer');
	}
	if (typeof ppid !== 'number') {
		if (typeof message === 'string') {
			ppid = message.length > 0 ? 51 : 56;
		} else {
			ppid = message.length > 0 ? 53 : 57;
		}
	}
	let bytes;
	if (ppid === 56) {
		bytes = Buffer.from(' ');
	} else if (ppid === 57) {
		bytes = Buffer.alloc(1);
	} else {
		bytes = typeof message === 'string' ? Buffer.from(message, 'utf8') : message;
	}
	return { message: bytes.toString('base64'), ppid };
}

/**
 * Events: 'transportclose', 'listenererror'. Observer: 'close', 'pause',
 * 'resume'.
 */
class DataProducer extends LeafObject {
	#data;
	#paused;

	constructor(connection, data, appData) {
		super(connection, data.id, appData, data.objectId);
		this.#data = {
			type: data.type,
			sctpStreamParameters: undef(data.sctpStreamParameters),
			label: data.label ?? '',
			protocol: data.protocol ?? '',
		};
		this.#paused = Boolean(data.paused);
	}

	get type() {
		return this.#data.type;
	}

	get sctpStreamParameters() {
		return this.#data.sctpStreamParameters;
	}

	get label() {
		return this.#data.label;
	}

	get protocol() {
		return this.#data.protocol;
	}

	get paused() {
		return this.#paused;
	}

	_transportClosed() {
		this._parentClosed('transportclose');
	}

	async dump() {
		return this._request('dump');
	}

	async getStats() {
		return this._request('getStats');
	}

	async pause() {
		await this._request('pause');
		const wasPaused = this.#paused;
		this.#paused = true;
		if (!wasPaused) {
			this.observer.safeEmit('pause');
		}
	}

	async resume() {
		await this._request('resume');
		const wasPaused = this.#paused;
		this.#paused = false;
		if (wasPaused) {
			this.observer.safeEmit('resume');
		}
	}

	/** Sends a message (string or Buffer) through a DirectTransport. */
	send(message, ppid, subchannels, requiredSubchannel) {
		const params = encodeMessage(message, ppid);
		if (subchannels !== undefined) {
			params.subchannels = subchannels;
		}
		if (requiredSubchannel !== undefined) {
			params.requiredSubchannel = requiredSubchannel;
		}
		if (this.closed) {
			throw new InvalidStateError('DataProducer closed');
		}
		this._connection.notify('send', this.objectId, params);
	}

	_applyState(state) {
		if ('paused' in state) {
			this.#paused = Boolean(state.paused);
		}
	}
}

module.exports = { DataProducer, encodeMessage };
