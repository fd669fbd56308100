'use strict';

const { LeafObject } = require('./RemoteObject');
const { encodeMessage } = require('./DataProducer');

const undef = (value) => (value === null ? undefined : value);

/**
 * Events: 'transportclose', 'dataproducerclose', 'dataproducerpause',
 * 'dataproducerresume', 'message' (Buffer, ppid), 'sctpsendbufferfull',
 * 'bufferedamountlow' (bufferedAmount), 'listenererror'. Observer: 'close',
 * 'pause', 'resume'.
 */
class DataConsumer extends LeafObject {
	#data;
	#paused;
	#dataProducerPaused;
	#subchannels;

	constructor(connection, data, appData) {
		super(connection, data.id, appData, data.objectId);
		this.#data = {
			dataProducerId: data.dataProducerId,
			type: data.type,
			sctpStreamParameters: undef(data.sctpStreamParameters),
			label: data.label ?? '',
			protocol: data.protocol ?? '',
			bufferedAmountLowThreshold: data.bufferedAmountLowThreshold,
		};
		this.#paused = Boolean(data.paused);
		this.#dataProducerPaused = Boolean(data.dataProducerPaused);
		this.#subchannels = Array.isArray(data.subchannels) ? data.subchannels : [];
	}

	get dataProducerId() {
		return this.#data.dataProducerId;
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

	get dataProducerPaused() {
		return this.#dataProducerPaused;
	}

	get subchannels() {
		return Array.from(this.#subchannels);
	}

	_transportClosed() {
		this._parentClosed('transportclose');
	}

	_dataProducerClosed() {
		if (!this._markClosed()) {
			return;
		}
		this.emit('@dataproducerclose');
		this.safeEmit('dataproducerclose');
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
		if (!wasPaused && !this.#dataProducerPaused) {
			this.observer.safeEmit('pause');
		}
	}

	async resume() {
		await this._request('resume');
		const wasPaused = this.#paused;
		this.#paused = false;
		if (wasPaused && !this.#dataProducerPaused) {
			this.observer.safeEmit('resume');
		}
	}

	async setBufferedAmountLowThreshold(threshold) {
		await this._request('setBufferedAmountLowThreshold', { threshold });
	}

	async getBufferedAmount() {
		const result = await this._request('getBufferedAmount');
		return result && typeof result === 'object' ? result.bufferedAmount : result;
	}

	async setSubchannels(subchannels) {
		const result = await this._request('setSubchannels', { subchannels });
		this.#subchannels = result && Array.isArray(result.subchannels) ? result.subchannels : subchannels;
	}

	async addSubchannel(subchannel) {
		const result = await this._request('addSubchannel', { subchannel });
		if (result && Array.isArray(result.subchannels)) {
			this.#subchannels = result.subchannels;
		} else if (!this.#subchannels.includes(subchannel)) {
			this.#subchannels = [...this.#subchannels, subchannel];
		}
	}

	async removeSubchannel(subchannel) {
		const result = await this._request('removeSubchannel', { subchannel });
		if (result && Array.isArray(result.subchannels)) {
			this.#subchannels = result.subchannels;
		} else {
			this.#subchannels = this.#subchannels.filter((s) => s !== subchannel);
		}
	}

	/** Sends a message (string or Buffer) to the endpoint (DirectTransport). */
	async send(message, ppid) {
		await this._request('send', encodeMessage(message, ppid));
	}

	_applyState(state) {
		if ('paused' in state) {
			this.#paused = Boolean(state.paused);
		}
		if ('dataProducerPaused' in state) {
			this.#dataProducerPaused = Boolean(state.dataProducerPaused);
		}
		if (Array.isArray(state.subchannels)) {
			this.#subchannels = state.subchannels;
		}
	}

	_remoteEvent(name, args) {
		switch (name) {
			case 'dataproducerclose':
				this._dataProducerClosed();
				break;
			case 'dataproducerpause':
				if (this.#dataProducerPaused) {
					break;
				}
				this.#dataProducerPaused = true;
				this.safeEmit('dataproducerpause');
				if (!this.#paused) {
					this.observer.safeEmit('pause');
				}
				break;
			case 'dataproducerresume':
				if (!this.#dataProducerPaused) {
					break;
				}
				this.#dataProducerPaused = false;
				this.safeEmit('dataproducerresume');
				if (!this.#paused) {
					this.observer.safeEmit('resume');
				}
				break;
			case 'message':
				if (this.closed) {
					break;
				}
				this.safeEmit('message', Buffer.from(String(args[0] ?? ''), 'base64'), args[1]);
				break;
			case 'sctpsendbufferfull':
				this.safeEmit('sctpsendbufferfull');
				break;
			case 'bufferedamountlow':
				this.safeEmit('bufferedamountlow', args[0]);
				break;
			default:
				break;
		}
	}
}

module.exports = { DataConsumer };
