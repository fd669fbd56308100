'use strict';

const WebSocket = require('ws');
const { errorFromResponse, InvalidStateError } = require('./errors');

const RECONNECT_MIN_DELAY = 100;
const RECONNECT_MAX_DELAY = 5000;
const DEFAULT_TIMEOUT = 10000;
// A connection left with no worker and no call in flight is closed after
// this long (its socket is unref'd meanwhile, so it never keeps the process
// alive on its own).
const IDLE_CLOSE_DELAY = 2000;
const EARLY_TTL = 5000;
// The node runs at most 64 calls of a connection at once and answers more
// with -32000 (busy); stay below, with room for a permit the node has not
// released yet when its answer arrives.
const MAX_IN_FLIGHT = 48;
const EARLY_MAX_IDS = 1024;
const EARLY_MAX_EVENTS = 64;

function jsonUrl(url) {
	const u = String(url);
	if (/[?&]format=/.test(u)) {
		return u;
	}
	return u + (u.includes('?') ? '&' : '?') + 'format=json';
}

/**
 * One ROPE connection (JSON text frames over a WebSocket) to a Mafalda Swarm
 * node: calls, the objects' events, the snapshot after a reconnection.
 *
 * It opens lazily on the first call, keeps the process alive only while the
 * app has workers open or calls in flight, reconnects (100 ms doubling to
 * 5 s) while the app has workers, and reconciles its objects with the
 * server's snapshot (objects it does not list are closed locally).
 */
class Connection {
	#url;
	#headers;
	#timeout;
	#ws = null;
	#opening = null;
	#nextId = 1;
	#pending = new Map();
	#closesInFlight = new Set();
	#closesUnanswered = 0;
	#callsUnanswered = 0;
	#outbox = [];
	// Events for ids not known (yet): an object's first events may come
	// before the answer that creates it. Kept EARLY_TTL ms.
	#early = new Map();
	#objects = new Map();
	#workers = new Set();
	#reconnectDelay = RECONNECT_MIN_DELAY;
	#reconnectTimer = null;
	#idleTimer = null;
	#hadSession = false;
	// The node keeps a dropped connection's session (its objects) for a
	// grace period; reconnecting with ?session=TOKEN gets it back. The token
	// is the state of the ROPE object `session` in the snapshot.
	#sessionToken = null;

	constructor(url, { token, headers, timeout } = {}) {
		if (!url) {
			throw new TypeError(
				'no node URL: set MAFALDA_NODE_URL (e.g. ws://127.0.0.1:7700/v1/rope) or call connect(url)'
			);
		}
		this.#url = jsonUrl(url);
		this.#headers = { ...(headers || {}) };
		if (token) {
			this.#headers.Authorization = `Bearer ${token}`;
		}
		this.#timeout = timeout || DEFAULT_TIMEOUT;
	}

	get url() {
		return this.#url;
	}

	get connected() {
		return Boolean(this.#ws && this.#ws.readyState === WebSocket.OPEN);
	}

	/** Objects known to this connection, by id (for tests). */
	get objectsForTesting() {
		return this.#objects;
	}

	register(object) {
		this.#objects.set(object.objectId, object);
		const early = this.#early.get(object.objectId);
		if (early) {
			this.#early.delete(object.objectId);
			// Events the node sent before the answer that made the object,
			// once the app got the object (as if they had come after).
			setImmediate(() => {
				for (const params of early.events) {
					if (this.#objects.get(object.objectId) === object) {
						this.#dispatch(object, params);
					}
				}
			});
		}
	}

	unregister(id) {
		this.#objects.delete(id);
	}

	addWorker(worker) {
		this.#workers.add(worker);
		this.#updateRef();
	}

	removeWorker(worker) {
		this.#workers.delete(worker);
		this.#updateRef();
	}

	/**
	 * Calls `method` on `target` (an object id, or null for the server).
	 * Resolves with the result, rejects with the mediasoup error class the
	 * server names. Calls go out in the order they are made; a call made
	 * after a close waits until that close is answered (mediasoup's channel
	 * is ordered, and a close is not awaited by the app).
	 */
	request(method, target, params) {
		return new Promise((resolve, reject) => {
			this.#outbox.push({ method, target, params, resolve, reject, close: false });
			this.#flush();
		});
	}

	/**
	 * Sends `close` to an object without the app waiting. Resolves (never
	 * rejects) when answered, or at once when there is no connection (the
	 * node closed everything of a lost connection).
	 */
	notifyClose(target) {
		// Without a connection, the node closes what it made unless the
		// session can be resumed: then the close waits for the reconnection.
		if (!this.#ws && !this.#sessionToken) {
			return Promise.resolve();
		}
		return this.notify('close', target, null);
	}

	/**
	 * A call the app does not wait for (close, send): sent in order, and the
	 * calls made after it (other than such calls) wait for its answer, as
	 * mediasoup's ordered channel would have it done first. Resolves (never
	 * rejects) when answered.
	 */
	notify(method, target, params) {
		const p = new Promise((resolve) => {
			this.#outbox.push({ method, target, params, resolve, reject: resolve, close: true });
		});
		this.#closesInFlight.add(p);
		p.then(() => {
			this.#closesInFlight.delete(p);
			this.#updateRef();
			this.#flush();
		});
		this.#flush();
		return p;
	}

	#flush() {
		while (this.#outbox.length > 0) {
			if (!this.#ws) {
				this.#connect().catch(() => {});
				return;
			}
			if (this.#ws.readyState !== WebSocket.OPEN) {
				// Flushed again once open; failed if it cannot open.
				return;
			}
			if (this.#pending.size >= MAX_IN_FLIGHT) {
				// Flushed again as answers come.
				return;
			}
			const item = this.#outbox[0];
			// The node runs calls on one object in the order they arrive
			// (rope/PROTOCOL.md), so one object's calls are pipelined; calls
			// on different objects run at once there. So calls and
			// fire-and-forget messages (close, send) alternate, each kind
			// waiting for the other kind sent before it to be answered (a
			// send after setSubchannels, a dump of a router after a close of
			// its transport).
			const other = item.close ? this.#callsUnanswered : this.#closesUnanswered;
			if (other > 0) {
				return;
			}
			this.#outbox.shift();
			const kind = item.close ? 'close' : 'call';
			this.#track(kind, 1);
			const sent = this.#send(item.method, item.target, item.params);
			sent.catch(() => {}).then(() => {
				this.#track(kind, -1);
				this.#flush();
			});
			if (item.close) {
				sent.catch(() => {}).then(() => item.resolve());
			} else {
				sent.then(item.resolve, item.reject);
			}
		}
	}

	#track(kind, delta) {
		if (kind === 'close') {
			this.#closesUnanswered += delta;
		} else {
			this.#callsUnanswered += delta;
		}
	}

	#failOutbox(error) {
		const items = this.#outbox;
		this.#outbox = [];
		for (const item of items) {
			if (item.close) {
				item.resolve();
			} else {
				item.reject(error);
			}
		}
	}

	/** Closes the socket and stops reconnecting. */
	close() {
		clearTimeout(this.#reconnectTimer);
		this.#reconnectTimer = null;
		clearTimeout(this.#idleTimer);
		this.#idleTimer = null;
		const ws = this.#ws;
		this.#ws = null;
		this.#opening = null;
		this.#sessionToken = null;
		if (ws) {
			ws.removeAllListeners();
			ws.on('error', () => {});
			try {
				ws.close();
			} catch (_) {
				ws.terminate();
			}
		}
		this.#failPending(new InvalidStateError('connection closed'));
		this.#failOutbox(new InvalidStateError('connection closed'));
	}

	#connect() {
		clearTimeout(this.#reconnectTimer);
		this.#reconnectTimer = null;
		const url = this.#sessionToken
			? `${this.#url}&session=${encodeURIComponent(this.#sessionToken)}`
			: this.#url;
		const ws = new WebSocket(url, { headers: this.#headers, perMessageDeflate: false });
		this.#ws = ws;
		this.#opening = new Promise((resolve, reject) => {
			const onOpen = () => {
				ws.off('error', onError);
				ws.off('close', onEarlyClose);
				this.#opening = null;
				this.#reconnectDelay = RECONNECT_MIN_DELAY;
				ws.on('error', () => {});
				ws.on('close', () => this.#onClose(ws));
				this.#updateRef();
				resolve();
				this.#flush();
			};
			const onError = (error) => {
				ws.off('open', onOpen);
				ws.off('close', onEarlyClose);
				const failure = new Error(`cannot connect to ${this.#url}: ${error.message}`);
				this.#openFailed(ws, failure);
				reject(failure);
			};
			const onEarlyClose = (code) => {
				ws.off('open', onOpen);
				ws.off('error', onError);
				const failure = new Error(`cannot connect to ${this.#url}: closed (${code})`);
				this.#openFailed(ws, failure);
				reject(failure);
			};
			ws.once('open', onOpen);
			ws.once('error', onError);
			ws.once('close', onEarlyClose);
		});
		ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
		// A failed first attempt is the caller's to see; no unhandled rejection.
		this.#opening.catch(() => {});
		return this.#opening;
	}

	#openFailed(ws, error) {
		if (this.#ws === ws) {
			this.#ws = null;
			this.#opening = null;
		}
		this.#failOutbox(error);
		ws.on('error', () => {});
		try {
			ws.terminate();
		} catch (_) {
			// Already gone.
		}
		this.#scheduleReconnect();
	}

	#onClose(ws) {
		if (this.#ws !== ws) {
			return;
		}
		this.#ws = null;
		this.#failPending(new InvalidStateError('connection to the node lost'));
		this.#failOutbox(new InvalidStateError('connection to the node lost'));
		this.#scheduleReconnect();
	}

	#scheduleReconnect() {
		if (this.#workers.size === 0 || this.#reconnectTimer) {
			return;
		}
		const delay = this.#reconnectDelay;
		this.#reconnectDelay = Math.min(this.#reconnectDelay * 2, RECONNECT_MAX_DELAY);
		this.#reconnectTimer = setTimeout(() => {
			this.#reconnectTimer = null;
			if (this.#workers.size === 0 || this.#ws) {
				return;
			}
			this.#connect().catch(() => {});
		}, delay);
	}

	#failPending(error) {
		for (const [id, call] of this.#pending) {
			clearTimeout(call.timer);
			this.#pending.delete(id);
			call.reject(error);
		}
		this.#updateRef();
	}

	#send(method, target, params) {
		const ws = this.#ws;
		if (!ws || ws.readyState !== WebSocket.OPEN) {
			return Promise.reject(new InvalidStateError('not connected to the node'));
		}
		const id = this.#nextId++;
		const message = { jsonrpc: '2.0', id, method, params: params === undefined ? null : params };
		if (target) {
			message.target = target;
		}
		return new Promise((resolve, reject) => {
			const timer = setTimeout(() => {
				this.#pending.delete(id);
				this.#updateRef();
				setImmediate(() => this.#flush());
				reject(new Error(`${method}: no answer from the node within ${this.#timeout} ms`));
			}, this.#timeout);
			timer.unref();
			this.#pending.set(id, { resolve, reject, timer, method });
			this.#updateRef();
			ws.send(JSON.stringify(message), (error) => {
				if (error && this.#pending.has(id)) {
					clearTimeout(timer);
					this.#pending.delete(id);
					this.#updateRef();
					reject(new InvalidStateError(`${method}: cannot send: ${error.message}`));
				}
			});
		});
	}

	#onMessage(data, isBinary) {
		if (isBinary) {
			return;
		}
		let msg;
		try {
			msg = JSON.parse(data.toString('utf8'));
		} catch (_) {
			return;
		}
		if (!msg || typeof msg !== 'object') {
			return;
		}
		if (typeof msg.method === 'string') {
			if (msg.id !== undefined && msg.id !== null) {
				// The server calls us: this client offers no methods.
				this.#reply(msg.id, { code: -32601, message: `unknown method ${msg.method}` });
				return;
			}
			if (msg.method === 'rope.event') {
				this.#onEvent(msg.params);
			} else if (msg.method === 'rope.snapshot') {
				this.#onSnapshot(msg.params);
			}
			return;
		}
		if (msg.id === undefined || msg.id === null) {
			return;
		}
		const call = this.#pending.get(msg.id);
		if (!call) {
			return;
		}
		clearTimeout(call.timer);
		this.#pending.delete(msg.id);
		this.#updateRef();
		if (msg.error) {
			call.reject(errorFromResponse(msg.error, call.method));
		} else {
			call.resolve(msg.result === undefined ? null : msg.result);
		}
		this.#flush();
	}

	#reply(id, error) {
		try {
			this.#ws.send(JSON.stringify({ jsonrpc: '2.0', id, error }));
		} catch (_) {
			// Gone.
		}
	}

	#onEvent(params) {
		if (!params || typeof params !== 'object' || typeof params.object !== 'string') {
			return;
		}
		const object = this.#objects.get(params.object);
		if (object) {
			this.#dispatch(object, params);
		} else if (params.name !== 'created') {
			this.#keepEarly(params);
		}
	}

	#keepEarly(params) {
		const now = Date.now();
		for (const [id, entry] of this.#early) {
			if (now - entry.at <= EARLY_TTL && this.#early.size < EARLY_MAX_IDS) {
				break;
			}
			this.#early.delete(id);
		}
		let entry = this.#early.get(params.object);
		if (!entry) {
			entry = { at: now, events: [] };
			this.#early.set(params.object, entry);
		}
		if (entry.events.length < EARLY_MAX_EVENTS) {
			entry.events.push(params);
		}
	}

	#dispatch(object, params) {
		try {
			if (params.name === 'closed') {
				object._remoteClosed();
			} else if (params.name === 'changed') {
				// Not applied: every change also comes as a named event (or
				// from the app's own call), which is what moves mediasoup's
				// state and emits its events; applying the mirror first would
				// swallow them (a 'producerpause' seen as already paused).
				// Snapshots after a reconnection do apply the state.
			} else if (params.name !== 'created') {
				object._remoteEvent(params.name, Array.isArray(params.data) ? params.data : []);
			}
		} catch (error) {
			// eslint-disable-next-line no-console
			console.error('remote-mediasoup: event handler failed:', error);
		}
	}

	#onSnapshot(params) {
		const listed = new Map();
		for (const entry of (params && params.objects) || []) {
			if (entry && entry.id) {
				listed.set(entry.id, entry);
				if (entry.objectType === 'session' && entry.state && typeof entry.state.token === 'string') {
					this.#sessionToken = entry.state.token;
				}
			}
		}
		const first = !this.#hadSession;
		this.#hadSession = true;
		if (first && this.#objects.size === 0) {
			return;
		}
		// Workers first: their loss closes what is under them.
		for (const worker of [...this.#workers]) {
			if (!listed.has(worker.id)) {
				worker._lost(new Error('the node no longer has this worker (connection lost)'));
			}
		}
		for (const [id, object] of [...this.#objects]) {
			const entry = listed.get(id);
			if (!entry) {
				if (!object.closed) {
					object._remoteClosed();
				}
			} else if (entry.state) {
				object._applyState(entry.state);
			}
		}
		// What the resumed session holds that the app no longer has (closed
		// while disconnected, or made by a call whose answer was lost).
		for (const [id, entry] of listed) {
			if (entry.objectType !== 'session' && !this.#objects.has(id)) {
				this.notifyClose(id);
			}
		}
	}

	#updateRef() {
		const busy =
			this.#pending.size > 0 ||
			this.#outbox.length > 0 ||
			this.#closesInFlight.size > 0 ||
			this.#workers.size > 0;
		const socket = this.#ws && this.#ws._socket;
		if (socket) {
			if (busy) {
				socket.ref();
			} else {
				socket.unref();
			}
		}
		if (busy || !this.#ws) {
			clearTimeout(this.#idleTimer);
			this.#idleTimer = null;
		} else if (!this.#idleTimer && !this.#opening) {
			this.#idleTimer = setTimeout(() => {
				this.#idleTimer = null;
				const stillIdle =
					this.#pending.size === 0 && this.#closesInFlight.size === 0 && this.#workers.size === 0;
				if (stillIdle && this.#ws && !this.#opening) {
					const ws = this.#ws;
					this.#ws = null;
					// Nothing left in the session: the next connection opens a new one.
					this.#sessionToken = null;
					ws.removeAllListeners();
					ws.on('error', () => {});
					ws.close();
				}
			}, IDLE_CLOSE_DELAY);
			this.#idleTimer.unref();
		}
	}
}

module.exports = { Connection, jsonUrl };
