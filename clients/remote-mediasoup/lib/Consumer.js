'use strict';

const { LeafObject } = require('./RemoteObject');
const { checkTraceTypes } = require('./Producer');

const undef = (value) => (value === null ? undefined : value);

/**
 * Events: 'transportclose', 'producerclose', 'producerpause',
 * 'producerresume', 'score', 'layerschange', 'trace', 'rtp',
 * 'listenererror'. Observer: 'close', 'pause', 'resume', 'score',
 * 'layerschange', 'trace'.
 */
class Consumer extends LeafObject {
	#data;
	#paused;
	#producerPaused;
	#priority;
	#score;
	#preferredLayers;
	#currentLayers;

	constructor(connection, data, appData) {
		super(connection, data.id, appData, data.objectId);
		this.#data = {
			producerId: data.producerId,
			kind: data.kind,
			rtpParameters: data.rtpParameters,
			type: data.type,
		};
		this.#paused = Boolean(data.paused);
		this.#producerPaused = Boolean(data.producerPaused);
		this.#priority = typeof data.priority === 'number' ? data.priority : 1;
		this.#score = data.score || { score: 10, producerScore: 10, producerScores: [] };
		this.#preferredLayers = undef(data.preferredLayers);
		this.#currentLayers = undef(data.currentLayers);
	}

	get producerId() {
		return this.#data.producerId;
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

	get paused() {
		return this.#paused;
	}

	get producerPaused() {
		return this.#producerPaused;
	}

	get priority() {
		return this.#priority;
	}

	get score() {
		return this.#score;
	}

	get preferredLayers() {
		return this.#preferredLayers;
	}

	get currentLayers() {
		return this.#currentLayers;
	}

	_transportClosed() {
		this._parentClosed('transportclose');
	}

	_producerClosed() {
		if (!this._markClosed()) {
			return;
		}
		this.emit('@producerclose');
		this.safeEmit('producerclose');
		this.observer.safeEmit('close');
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
		if (!wasPaused && !this.#producerPaused) {
			this.observer.safeEmit('pause');
		}
	}

	async resume() {
		await this._request('resume');
		const wasPaused = this.#paused;
		this.#paused = false;
		if (wasPaused && !this.#producerPaused) {
			this.observer.safeEmit('resume');
		}
	}

	async setPreferredLayers({ spatialLayer, temporalLayer } = {}) {
		if (typeof spatialLayer !== 'number') {
			throw new TypeError('spatialLayer must be a number');
		}
		if (temporalLayer && typeof temporalLayer !== 'number') {
			throw new TypeError('if given, temporalLayer must be a number');
		}
		const params = { spatialLayer };
		if (temporalLayer !== undefined) {
			params.temporalLayer = temporalLayer;
		}
		const result = await this._request('setPreferredLayers', params);
		if (result && typeof result === 'object' && 'preferredLayers' in result) {
			this.#preferredLayers = undef(result.preferredLayers);
		} else if (this.#data.type === 'simple' || this.#data.kind === 'audio') {
			// The node did not say: mediasoup ignores layers on these.
			this.#preferredLayers = undefined;
		} else {
			this.#preferredLayers = params;
		}
	}

	async setPriority(priority) {
		if (typeof priority !== 'number' || priority < 0) {
			throw new TypeError('priority must be a positive number');
		}
		const result = await this._request('setPriority', { priority });
		this.#priority = result && typeof result.priority === 'number' ? result.priority : priority;
	}

	async unsetPriority() {
		await this.setPriority(1);
	}

	async requestKeyFrame() {
		await this._request('requestKeyFrame');
	}

	async enableTraceEvent(types = []) {
		checkTraceTypes(types);
		await this._request('enableTraceEvent', { types });
	}

	_applyState(state) {
		if ('paused' in state) {
			this.#paused = Boolean(state.paused);
		}
		if ('producerPaused' in state) {
			this.#producerPaused = Boolean(state.producerPaused);
		}
		if (state.score && typeof state.score === 'object') {
			this.#score = state.score;
		}
		if ('currentLayers' in state) {
			this.#currentLayers = undef(state.currentLayers);
		}
		if (typeof state.priority === 'number') {
			this.#priority = state.priority;
		}
	}

	_remoteEvent(name, args) {
		switch (name) {
			case 'producerclose':
				this._producerClosed();
				break;
			case 'producerpause':
				if (this.#producerPaused) {
					break;
				}
				this.#producerPaused = true;
				this.safeEmit('producerpause');
				if (!this.#paused) {
					this.observer.safeEmit('pause');
				}
				break;
			case 'producerresume':
				if (!this.#producerPaused) {
					break;
				}
				this.#producerPaused = false;
				this.safeEmit('producerresume');
				if (!this.#paused) {
					this.observer.safeEmit('resume');
				}
				break;
			case 'score':
				this.#score = args[0];
				this.safeEmit('score', this.#score);
				this.observer.safeEmit('score', this.#score);
				break;
			case 'layerschange':
				this.#currentLayers = undef(args[0]);
				this.safeEmit('layerschange', this.#currentLayers);
				this.observer.safeEmit('layerschange', this.#currentLayers);
				break;
			case 'trace':
				this.safeEmit('trace', args[0]);
				this.observer.safeEmit('trace', args[0]);
				break;
			case 'rtp':
				this.safeEmit('rtp', Buffer.from(String(args[0] ?? ''), 'base64'));
				break;
			default:
				break;
		}
	}
}

module.exports = { Consumer };
