'use strict';

const { RemoteObject } = require('./RemoteObject');

/**
 * Events: 'workerclose', 'listenererror'. Observer: 'close',
 * 'webrtctransporthandled', 'webrtctransportunhandled'.
 */
class WebRtcServer extends RemoteObject {
	#webRtcTransports = new Map();

	constructor(connection, { id }, appData) {
		super(connection, id, appData);
	}

	get webRtcTransportsForTesting() {
		return this.#webRtcTransports;
	}

	close() {
		if (!this._markClosed()) {
			return;
		}
		this._sendClose();
		this.#closeTransports();
		this.emit('@close');
		this.observer.safeEmit('close');
	}

	_workerClosed() {
		if (!this._markClosed()) {
			return;
		}
		this.#closeTransports();
		this.emit('@close');
		this.safeEmit('workerclose');
		this.observer.safeEmit('close');
	}

	_remoteClosed() {
		if (!this._markClosed()) {
			return;
		}
		this.#closeTransports();
		this.emit('@close');
		this.observer.safeEmit('close');
	}

	async dump() {
		return this._request('dump');
	}

	handleWebRtcTransport(webRtcTransport) {
		this.#webRtcTransports.set(webRtcTransport.id, webRtcTransport);
		this.observer.safeEmit('webrtctransporthandled', webRtcTransport);
		webRtcTransport.on('@close', () => {
			if (this.#webRtcTransports.delete(webRtcTransport.id)) {
				this.observer.safeEmit('webrtctransportunhandled', webRtcTransport);
			}
		});
	}

	#closeTransports() {
		const transports = [...this.#webRtcTransports.values()];
		this.#webRtcTransports.clear();
		for (const webRtcTransport of transports) {
			webRtcTransport._listenServerClosed();
			this.observer.safeEmit('webrtctransportunhandled', webRtcTransport);
		}
	}
}

module.exports = { WebRtcServer };
