'use strict';

const { RemoteObject, checkAppData } = require('./RemoteObject');
const { InvalidStateError } = require('./errors');
const { WebRtcServer } = require('./WebRtcServer');
const { Router } = require('./Router');

/**
 * A mediasoup worker on the node (a thread there: `pid` is the node's).
 * Events: 'died' (error), 'subprocessclose' (the node let it go),
 * 'listenererror'. Observer: 'close', 'newwebrtcserver', 'newrouter'.
 */
class Worker extends RemoteObject {
	#pid;
	#died = false;
	#subprocessClosed = false;
	#webRtcServers = new Set();
	#routers = new Set();

	constructor(connection, { id, pid }, appData) {
		super(connection, id, appData);
		this.#pid = pid;
		connection.addWorker(this);
	}

	get pid() {
		return this.#pid;
	}

	get died() {
		return this.#died;
	}

	get subprocessClosed() {
		return this.#subprocessClosed;
	}

	get webRtcServersForTesting() {
		return this.#webRtcServers;
	}

	get routersForTesting() {
		return this.#routers;
	}

	close() {
		if (!this._markClosed()) {
			return;
		}
		const answered = this._connection.notifyClose(this.objectId);
		this._connection.removeWorker(this);
		this.#closeChildren();
		this.observer.safeEmit('close');
		answered.then(() => this.#setSubprocessClosed());
	}

	async dump() {
		return this._request('dump');
	}

	async getResourceUsage() {
		return this._request('getResourceUsage');
	}

	async updateSettings({ logLevel, logTags } = {}) {
		await this._request('updateSettings', { logLevel, logTags });
	}

	async createWebRtcServer({ listenInfos, appData } = {}) {
		if (!Array.isArray(listenInfos)) {
			throw new TypeError('listenInfos must be an array');
		}
		checkAppData(appData);
		const data = await this._request('createWebRtcServer', { listenInfos });
		if (this.closed) {
			throw new InvalidStateError('Worker closed');
		}
		const webRtcServer = new WebRtcServer(this._connection, data, appData);
		this.#webRtcServers.add(webRtcServer);
		webRtcServer.on('@close', () => this.#webRtcServers.delete(webRtcServer));
		this.observer.safeEmit('newwebrtcserver', webRtcServer);
		return webRtcServer;
	}

	async createRouter({ mediaCodecs, appData } = {}) {
		if (mediaCodecs !== undefined && !Array.isArray(mediaCodecs)) {
			throw new TypeError('mediaCodecs must be an array');
		}
		checkAppData(appData);
		if (this.closed) {
			throw new InvalidStateError('Worker closed');
		}
		const params = {};
		if (mediaCodecs !== undefined) {
			params.mediaCodecs = mediaCodecs;
		}
		const data = await this._request('createRouter', params);
		if (this.closed) {
			throw new InvalidStateError('Worker closed');
		}
		const router = new Router(this._connection, data, appData);
		this.#routers.add(router);
		router.on('@close', () => this.#routers.delete(router));
		this.observer.safeEmit('newrouter', router);
		return router;
	}

	/** The node says the worker died (or the connection lost it). */
	_lost(error) {
		if (!this._markClosed()) {
			return;
		}
		this.#died = true;
		this._connection.removeWorker(this);
		this.#closeChildren();
		this.safeEmit('died', error);
		this.observer.safeEmit('close');
		this.#setSubprocessClosed();
	}

	_remoteEvent(name, args) {
		if (name === 'died') {
			this._lost(new Error(String(args[0] ?? 'worker died')));
		}
	}

	_applyState(state) {
		if (state && typeof state.pid === 'number') {
			this.#pid = state.pid;
		}
	}

	_remoteClosed() {
		this._lost(new Error('worker closed by the node'));
	}

	#closeChildren() {
		for (const webRtcServer of this.#webRtcServers) {
			webRtcServer._workerClosed();
		}
		this.#webRtcServers.clear();
		for (const router of this.#routers) {
			router._workerClosed();
		}
		this.#routers.clear();
	}

	#setSubprocessClosed() {
		if (this.#subprocessClosed) {
			return;
		}
		this.#subprocessClosed = true;
		this.safeEmit('subprocessclose');
	}
}

module.exports = { Worker };
