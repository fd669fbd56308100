'use strict';

/**
 * mediasoup's error classes. TypeError is the builtin one.
 */
class UnsupportedError extends Error {
	constructor(message) {
		super(message);
		this.name = 'UnsupportedError';
		if (Error.captureStackTrace) {
			Error.captureStackTrace(this, UnsupportedError);
		}
	}
}

class InvalidStateError extends Error {
	constructor(message) {
		super(message);
		this.name = 'InvalidStateError';
		if (Error.captureStackTrace) {
			Error.captureStackTrace(this, InvalidStateError);
		}
	}
}

// ROPE / mediasoup-api error codes (mediasoup-api/PROTOCOL.md).
const ERROR_CODES = {
	INVALID_PARAMS: -32602,
	NOT_FOUND: -32001,
	INVALID_STATE: -32030,
	UNSUPPORTED: -32031,
	MEDIASOUP: -32032,
};

/**
 * Turns a JSON-RPC error object into the mediasoup error class it names
 * (`data.name`), else the one its code stands for.
 */
function errorFromResponse(error, method) {
	const message =
		(error && typeof error.message === 'string' && error.message) ||
		`${method} failed`;
	const name = error && error.data && typeof error.data === 'object' ? error.data.name : undefined;
	const code = error ? error.code : undefined;
	let err;

	if (name === 'TypeError' || (!name && code === ERROR_CODES.INVALID_PARAMS)) {
		err = new TypeError(message);
	} else if (
		name === 'InvalidStateError' ||
		(!name && (code === ERROR_CODES.INVALID_STATE || code === ERROR_CODES.NOT_FOUND))
	) {
		err = new InvalidStateError(message);
	} else if (name === 'UnsupportedError' || (!name && code === ERROR_CODES.UNSUPPORTED)) {
		err = new UnsupportedError(message);
	} else {
		err = new Error(message);
	}
	if (code !== undefined) {
		err.code = code;
	}
	if (error && error.data !== undefined) {
		err.data = error.data;
	}
	return err;
}

module.exports = { UnsupportedError, InvalidStateError, ERROR_CODES, errorFromResponse };
