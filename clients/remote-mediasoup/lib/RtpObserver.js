'use strict';

const { LeafObject } = require('./RemoteObject');

/**
 * What ActiveSpeakerObserver and AudioLevelObserver share. Events:
 * 'routerclose', 'listenererror'. Observer: 'close', 'pause', 'resume',
 * 'addproducer', 'removeproducer'.
 */
class RtpObserver extends LeafObject {
	#paused;
	#getProducerById;

	constructor(connection, data, appData, { getProducerById }) {
		super(connection, data.id, appData);
		this.#paused = Boolean(data.paused);
		this.#getProducerById = getProducerById;
	}

	get paused() {
		return this.#paused;
	}

	_producer(producerId) {
		return this.#getProducerById(producerId);
	}

	_routerClosed() {
		this._parentClosed('routerclose');
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

	async addProducer({ producerId } = {}) {
		const producer = this.#getProducerById(producerId);
		if (!producer) {
			throw Error(`Producer with id "${producerId}" not found`);
		}
		await this._request('addProducer', { producerId });
		this.observer.safeEmit('addproducer', producer);
	}

	async removeProducer({ producerId } = {}) {
		const producer = this.#getProducerById(producerId);
		if (!producer) {
			throw Error(`Producer with id "${producerId}" not found`);
		}
		await this._request('removeProducer', { producerId });
		this.observer.safeEmit('removeproducer', producer);
	}

	_applyState(state) {
		if ('paused' in state) {
			this.#paused = Boolean(state.paused);
		}
	}
}

/** Events: 'dominantspeaker' ({producer}). */
class ActiveSpeakerObserver extends RtpObserver {
	_remoteEvent(name, args) {
		if (name !== 'dominantspeaker') {
			return;
		}
		const producer = this._producer(args[0] && args[0].producerId);
		if (!producer) {
			return;
		}
		const dominantSpeaker = { producer };
		this.safeEmit('dominantspeaker', dominantSpeaker);
		this.observer.safeEmit('dominantspeaker', dominantSpeaker);
	}
}

/** Events: 'volumes' ([{producer, volume}]), 'silence'. */
class AudioLevelObserver extends RtpObserver {
	_remoteEvent(name, args) {
		if (name === 'volumes') {
			const volumes = (Array.isArray(args[0]) ? args[0] : [])
				.map(({ producerId, volume }) => ({ producer: this._producer(producerId), volume }))
				.filter(({ producer }) => producer);
			if (volumes.length > 0) {
				this.safeEmit('volumes', volumes);
				this.observer.safeEmit('volumes', volumes);
			}
		} else if (name === 'silence') {
			this.safeEmit('silence');
			this.observer.safeEmit('silence');
		}
	}
}

module.exports = { RtpObserver, ActiveSpeakerObserver, AudioLevelObserver };
