'use strict';

const { EventEmitter } = require('node:events');

/**
 * mediasoup's EventEmitter: safeEmit() calls the listeners and never throws
 * (a listener's error goes to a 'listenererror' listener, if any, or to
 * stderr).
 */
class EnhancedEventEmitter extends EventEmitter {
	constructor() {
		super();
		this.setMaxListeners(Infinity);
	}

	emit(eventName, ...args) {
		return super.emit(eventName, ...args);
	}

	safeEmit(eventName, ...args) {
		try {
			return super.emit(eventName, ...args);
		} catch (error) {
			try {
				if (eventName !== 'listenererror' && this.listenerCount('listenererror') > 0) {
					super.emit('listenererror', eventName, error);
				} else {
					// eslint-disable-next-line no-console
					console.error(`remote-mediasoup: listener of "${String(eventName)}" threw:`, error);
				}
			} catch (_) {
				// Nothing else to do.
			}
			return Boolean(this.listenerCount(eventName));
		}
	}

	async safeEmitAsPromise(eventName, ...args) {
		return new Promise((resolve, reject) => {
			try {
				this.emit(eventName, ...args, resolve, reject);
			} catch (error) {
				reject(error);
			}
		});
	}
}

module.exports = { EnhancedEventEmitter };
