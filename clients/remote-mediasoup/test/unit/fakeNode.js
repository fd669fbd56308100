'use strict';

// A small in-process stand-in for a node's ROPE WebSocket (JSON frames), for
// the client's unit tests only: it answers calls with the handlers a test
// gives and lets the test send events and snapshots.

const { WebSocketServer } = require('ws');
const { randomUUID } = require('node:crypto');

class FakeNode {
	constructor(handlers = {}) {
		this.handlers = handlers;
		this.calls = [];
		this.upgrades = [];
		this.sockets = new Set();
		this.snapshot = [];
		this.wss = null;
	}

	async start() {
		this.wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
		this.wss.on('connection', (ws, request) => {
			this.upgrades.push({ url: request.url, headers: request.headers });
			this.sockets.add(ws);
			ws.on('close', () => this.sockets.delete(ws));
			ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'rope.snapshot', params: { objects: this.snapshot } }));
			ws.on('message', (data) => this.#onMessage(ws, JSON.parse(String(data))));
		});
		await new Promise((resolve) => this.wss.on('listening', resolve));
		return this;
	}

	get url() {
		return `ws://127.0.0.1:${this.wss.address().port}/v1/rope`;
	}

	async #onMessage(ws, msg) {
		this.calls.push(msg);
		const handler = this.handlers[msg.method];
		let reply;
		try {
			const result = handler ? await handler(msg.params, msg.target, msg) : defaultResult(msg);
			reply = { jsonrpc: '2.0', id: msg.id, result: result === undefined ? null : result };
		} catch (error) {
			reply = { jsonrpc: '2.0', id: msg.id, error: error.rope || { code: -32603, message: String(error) } };
		}
		if (reply.result && reply.result.__noReply) {
			return;
		}
		ws.send(JSON.stringify(reply));
	}

	event(object, objectType, name, data) {
		const msg = JSON.stringify({ jsonrpc: '2.0', method: 'rope.event', params: { object, objectType, name, data } });
		for (const ws of this.sockets) {
			ws.send(msg);
		}
	}

	dropConnections() {
		for (const ws of this.sockets) {
			ws.terminate();
		}
	}

	async stop() {
		for (const ws of this.sockets) {
			ws.terminate();
		}
		await new Promise((resolve) => this.wss.close(resolve));
	}
}

function defaultResult(msg) {
	switch (msg.method) {
		case 'mediasoup.createWorker':
			return { id: randomUUID(), pid: 4242 };
		case 'createRouter':
			return { id: randomUUID(), rtpCapabilities: { codecs: [], headerExtensions: [] } };
		case 'createDirectTransport':
			return { id: randomUUID() };
		default:
			return null;
	}
}

function ropeError(code, message, name) {
	const error = new Error(message);
	error.rope = { code, message, data: name ? { name } : undefined };
	return error;
}

module.exports = { FakeNode, ropeError };
