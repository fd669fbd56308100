'use strict';

const { LeafObject } = require('./RemoteObject');
const { InvalidStateError } = require('./errors');

function checkTraceTypes(types) {
	if (!Array.isArray(types)) {
		throw new TypeError('types must be an array');
	}
	if (types.find((type) => typeof type !== 'string')) {
		throw new TypeError('every type must be a string');
	}
}

/**
 * Events: 'transportclose', 'score', 'videoorientationchange', 'trace',
 * 'listenererror'. Observer: 'close', 'pause', 'resume', 'score',
 * 'videoorientationchange', 'trace'.
 */
class Producer extends LeafObject {
	#data;
	#paused;
	#score;

	constructor(connection, data, appData) {
		super(connection, data.id, appData, data.objectId);
		this.#data = {
			kind: data.kind,
			rtpParameters: data.rtpParameters,
			type: data.type,
			consumableRtpParameters: data.consumableRtpParameters,
		};
		this.#paused = Boolean(data.paused);
		this.#score = Array.isArray(data.score) ? data.score : [];
	}

	get kind() {
		return this.#data.kind;
	}

	get rtpParameters() {
		return this.#data.rtpParameters;
	}

	get type() {
		return this.#data.type;
	}

	get consumableRtpParameters() {
		return this.#data.consumableRtpParameters;
	}

	get paused() {
		return this.#paused;
	}

	get score() {
		return this.#score;
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

	async enableTraceEvent(types = []) {
		checkTraceTypes(types);
		await this._request('enableTraceEvent', { types });
	}

	/** Sends an RTP packet (a Buffer) into a DirectTransport's producer. */
	send(rtpPacket) {
		if (!Buffer.isBuffer(rtpPacket)) {
			throw new TypeError('rtpPacket must be a Buffer');
		}
		if (this.closed) {
			throw new InvalidStateError('Producer closed');
		}
		this._connection.notify('send', this.objectId, { packet: rtpPacket.toString('base64') });
	}

	_applyState(state) {
		if ('paused' in state) {
			this.#paused = Boolean(state.paused);
		}
		if (Array.isArray(state.score)) {
			this.#score = state.score;
		}
	}

	_remoteEvent(name, args) {
		switch (name) {
			case 'score': {
				this.#score = Array.isArray(args[0]) ? args[0] : [];
				this.safeEmit('score', this.#score);
				this.observer.safeEmit('score', this.#score);
				break;
			}
			case 'videoorientationchange':
			case 'trace': {
				this.safeEmit(name, args[0]);
				this.observer.safeEmit(name, args[0]);
				break;
			}
			default:
				break;
		}
	}
}

module.exports = { Producer, checkTraceTypes };
