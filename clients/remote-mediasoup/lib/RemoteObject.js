'use strict';

const { EnhancedEventEmitter } = require('./EnhancedEventEmitter');
const { InvalidStateError } = require('./errors');
const { testingChannel } = require('./testingChannel');

function checkAppData(appData) {
	if (appData !== undefined && appData !== null && typeof appData !== 'object') {
		throw new TypeError('if given, appData must be an object');
	}
}

function clone(value) {
	if (value === undefined) {
		return undefined;
	}
	if (Number.isNaN(value)) {
		return NaN;
	}
	return structuredClone(value);
}

/**
 * What every remote mediasoup object shares: its id on the node, `closed`,
 * `appData`, `observer`, calls to the node and the local part of closing.
 * Subclasses implement _remoteEvent (named events), _applyState (ROPE state)
 * and _remoteClosed (closed by the node for a reason not told before).
 */
class RemoteObject extends EnhancedEventEmitter {
	#connection;
	#id;
	#objectId;
	#closed = false;
	#appData;
	#observer = new EnhancedEventEmitter();

	/**
	 * `id` is mediasoup's id; `objectId` the ROPE id the node calls it by
	 * (the same, except for a pipe producer in the same connection as its
	 * producer: the node answers it as `objectId`).
	 */
	constructor(connection, id, appData, objectId = id) {
		super();
		this.#connection = connection;
		this.#id = id;
		this.#objectId = objectId || id;
		this.#appData = appData || {};
		connection.register(this);
	}

	get id() {
		return this.#id;
	}

	/** The ROPE id of the object on the node. */
	get objectId() {
		return this.#objectId;
	}

	get closed() {
		return this.#closed;
	}

	get appData() {
		return this.#appData;
	}

	set appData(appData) {
		this.#appData = appData;
	}

	get observer() {
		return this.#observer;
	}

	/** The ROPE connection (private API, like mediasoup's channel). */
	get connectionForTesting() {
		return this.#connection;
	}

	/**
	 * Private API for mediasoup's own tests: emit(id, fbs.Event.X,
	 * fbsNotification) acts as if the node had sent that event.
	 */
	get channelForTesting() {
		return testingChannel(this.#connection);
	}

	get _connection() {
		return this.#connection;
	}

	/** Marks the object closed and forgets it; false if it was already. */
	_markClosed() {
		if (this.#closed) {
			return false;
		}
		this.#closed = true;
		this.#connection.unregister(this.#objectId);
		return true;
	}

	/** Sends `close` to the node without waiting. */
	_sendClose() {
		this.#connection.notifyClose(this.#objectId);
	}

	/**
	 * Calls a method of this object on the node (in order: see the
	 * connection's outbox).
	 */
	_request(method, params) {
		if (this.#closed) {
			return Promise.reject(new InvalidStateError(`${this.constructor.name} closed`));
		}
		return this.#connection.request(method, this.#objectId, params);
	}

	_applyState(_state) {}

	_remoteEvent(_name, _args) {}

	_remoteClosed() {}
}

/**
 * An object with nothing under it (producers, consumers, data producers and
 * consumers, RTP observers): closing it here tells its parent (`@close`),
 * the node (without waiting) and the observer; closing with its parent emits
 * the parent's event (`transportclose`, `routerclose`) instead.
 */
class LeafObject extends RemoteObject {
	close() {
		if (!this._markClosed()) {
			return;
		}
		this._sendClose();
		this.emit('@close');
		this.observer.safeEmit('close');
	}

	/** Closed because its parent closed: `event`, then the observer's `close`. */
	_parentClosed(event) {
		if (!this._markClosed()) {
			return;
		}
		this.safeEmit(event);
		this.observer.safeEmit('close');
	}

	_remoteClosed() {
		if (!this._markClosed()) {
			return;
		}
		this.emit('@close');
		this.observer.safeEmit('close');
	}
}

module.exports = { RemoteObject, LeafObject, checkAppData, clone };
