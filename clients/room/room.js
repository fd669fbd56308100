// @ts-check
/**
 * A room of Mafalda Swarm for browser apps: connect to any node's `/v1/rope`,
 * join a room that spans nodes, publish the camera and microphone, and play
 * every other participant with mediasoup-client, whichever node they joined
 * at. The wire is the node's: `rope/PROTOCOL.md` (messages, snapshot and
 * events) and the "Rooms" section of `mediasoup-api/PROTOCOL.md`.
 *
 * ```js
 * import { joinRoom } from './room.js';
 * const room = await joinRoom('ws://127.0.0.1:7700/v1/rope', 'standup', { appData: { name: 'ana' } });
 * room.on('consumer', ({ consumer, producer }) => show(producer, consumer.track));
 * room.on('consumerclose', ({ producer }) => hide(producer));
 * await room.publish(await navigator.mediaDevices.getUserMedia({ audio: true, video: true }));
 * await room.leave();
 * ```
 *
 * @module mafalda-room
 */
import { Device } from 'mediasoup-client';

/**
 * A producer of the room, wherever it was produced (the room object's state).
 * @typedef {object} RoomProducer
 * @property {string} id the same id at every node
 * @property {'audio' | 'video'} kind
 * @property {string} node the peer id of the node it was produced at
 * @property {boolean} paused
 * @property {Record<string, any>} appData what its app gave `produce`
 */

/**
 * The room object's state: `room.join`'s answer without its `id`.
 * @typedef {object} RoomState
 * @property {import('mediasoup-client').types.RtpCapabilities} rtpCapabilities
 * @property {RoomProducer[]} producers
 * @property {string[]} nodes the peer ids of the nodes with members in the room
 */

/**
 * An object of the connection, as the node last told (the ROPE mirror).
 * @typedef {object} RopeObject
 * @property {string} id
 * @property {string} objectType
 * @property {any} state
 */

/**
 * A ROPE event: `created`, `changed` and `closed` change the mirror; any
 * other name is one of the object's own events (mediasoup's), with its
 * arguments as `data`.
 * @typedef {object} RopeEvent
 * @property {string} object
 * @property {string} objectType
 * @property {string} name
 * @property {any} data
 */

/** How long to wait before consuming again a producer whose consumer the node closed (ms). */
const RECONSUME_DELAY = 500;

/** A minimal event emitter (browsers have no `EventEmitter`). */
class Emitter {
  /** @type {Map<string, Set<(value: any) => void>>} */
  #listeners = new Map();

  /**
   * Calls `listener` on every `name` event; returns a function that stops it.
   * @param {string} name
   * @param {(value: any) => void} listener
   * @returns {() => void}
   */
  on(name, listener) {
    if (!this.#listeners.has(name)) this.#listeners.set(name, new Set());
    this.#listeners.get(name)?.add(listener);
    return () => this.#listeners.get(name)?.delete(listener);
  }

  /**
   * @param {string} name
   * @param {any} [value]
   */
  emit(name, value) {
    for (const listener of [...(this.#listeners.get(name) ?? [])]) {
      try {
        listener(value);
      } catch (error) {
        console.error(`a '${name}' listener threw`, error);
      }
    }
  }
}

/**
 * An error answer of the node. `name` is mediasoup's error class when the
 * node gives one (`TypeError`, `InvalidStateError`, `UnsupportedError`),
 * else `RopeError`; `code` is the ROPE error code (−32001 not found,
 * −32004 limit, …).
 */
export class RopeError extends Error {
  /**
   * @param {{code: number, message: string, data?: any}} error
   * @param {string} method
   */
  constructor(error, method) {
    super(`${method}: ${error.message} (${error.code})`);
    this.name = typeof error.data?.name === 'string' ? error.data.name : 'RopeError';
    /** @type {number} */
    this.code = error.code;
    /** @type {any} */
    this.data = error.data;
  }
}

/**
 * One ROPE connection to a node (JSON text frames): calls, and a mirror of
 * the objects the node says this connection has, kept from its snapshot
 * and events.
 *
 * When the socket drops, it connects again with the session's token (the
 * node's `session` object) for as long as the node keeps the session
 * (`graceMs`), waiting 100 ms, then twice as long each time up to 5 s. The
 * node's new snapshot then reconciles the mirror: what it no longer lists is
 * reported `closed`. Calls fail at once while disconnected.
 *
 * Events: `event` (every {@link RopeEvent}, after the mirror took it),
 * `reconnecting` (the socket dropped; trying again), `reconnected` (the
 * session is back, mirror reconciled), `disconnected` (for good: closed by
 * the app, never opened, or the session could not be resumed in time).
 */
export class Rope extends Emitter {
  /** @type {Map<string, RopeObject>} the objects, by id, in creation order */
  mirror = new Map();
  /** @type {WebSocket} */
  #socket;
  #address;
  #nextId = 1;
  /** @type {Map<number, {resolve: (result: any) => void, reject: (error: Error) => void, method: string}>} */
  #pending = new Map();
  #timeout;
  #closed = false;
  /** When the socket dropped, while reconnecting. */
  #droppedAt = 0;
  #delay = 100;

  /**
   * Connects to `url` (`ws://HOST:PORT/v1/rope`) and resolves once the node's
   * snapshot arrived.
   * @param {string} url
   * @param {{accessToken?: string, timeout?: number}} [options] the app token,
   *   if the node wants one; how long a call may take (10 s)
   * @returns {Promise<Rope>}
   */
  static connect(url, options = {}) {
    const rope = new Rope(url, options);
    return new Promise((resolve, reject) => {
      const stop = [
        rope.on('snapshot', () => {
          stop.forEach((off) => off());
          resolve(rope);
        }),
        rope.on('disconnected', () => {
          stop.forEach((off) => off());
          reject(new Error(`cannot connect to ${url}`));
        }),
      ];
    });
  }

  /**
   * @param {string} url
   * @param {{accessToken?: string, timeout?: number}} options
   */
  constructor(url, { accessToken, timeout = 10000 }) {
    super();
    this.#address = new URL(url);
    this.#address.searchParams.set('format', 'json');
    if (accessToken) this.#address.searchParams.set('access_token', accessToken);
    this.#timeout = timeout;
    this.#socket = this.#open();
  }

  /** The session's token and how long the node keeps it after a drop, from the `session` object. */
  get session() {
    const state = this.mirror.get('session')?.state;
    return typeof state?.token === 'string' ? { token: state.token, graceMs: Number(state.graceMs) || 0 } : null;
  }

  /** Opens a socket (with the session's token when there is one to resume). */
  #open() {
    const address = new URL(this.#address);
    const session = this.session;
    if (session) address.searchParams.set('session', session.token);
    const socket = new WebSocket(address);
    socket.onmessage = (message) => this.#receive(JSON.parse(message.data));
    socket.onclose = () => this.#dropped(socket);
    return socket;
  }

  /** @param {WebSocket} socket */
  #dropped(socket) {
    if (socket !== this.#socket) return;
    for (const { reject, method } of this.#pending.values()) reject(new Error(`${method}: the connection to the node closed`));
    this.#pending.clear();
    const session = this.session;
    if (!this.#droppedAt) this.#droppedAt = Date.now();
    const left = session ? session.graceMs - (Date.now() - this.#droppedAt) : 0;
    if (this.#closed || left <= this.#delay) {
      this.#closed = true;
      this.emit('disconnected');
      return;
    }
    if (this.#delay === 100) this.emit('reconnecting');
    setTimeout(() => {
      if (!this.#closed) this.#socket = this.#open();
    }, this.#delay);
    this.#delay = Math.min(this.#delay * 2, 5000);
  }

  /** Whether the socket is open. */
  get connected() {
    return this.#socket.readyState === WebSocket.OPEN;
  }

  /**
   * Calls `method` on object `target` (none: the node itself).
   * @param {string} method
   * @param {any} [params]
   * @param {string} [target]
   * @returns {Promise<any>} the result; rejects with a {@link RopeError}
   */
  call(method, params = null, target = undefined) {
    if (!this.connected) return Promise.reject(new Error(`${method}: not connected to the node`));
    const id = this.#nextId++;
    /** @type {Record<string, any>} */
    const request = { jsonrpc: '2.0', id, method, params };
    if (target !== undefined) request.target = target;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.#pending.delete(id)) reject(new Error(`${method}: no answer within ${this.#timeout} ms`));
      }, this.#timeout);
      const settle = (/** @type {Function} */ fn) => (/** @type {any} */ value) => {
        clearTimeout(timer);
        fn(value);
      };
      this.#pending.set(id, { resolve: settle(resolve), reject: settle(reject), method });
      this.#socket.send(JSON.stringify(request));
    });
  }

  /** Closes the connection: the node closes everything it made (after the session's grace). */
  close() {
    this.#closed = true;
    this.#socket.close();
  }

  /** @param {any} message */
  #receive(message) {
    if (message.method === 'rope.snapshot') return this.#snapshot(message.params.objects);
    if (message.method === 'rope.event') return this.#event(message.params);
    const pending = this.#pending.get(message.id);
    if (!pending) return;
    this.#pending.delete(message.id);
    if (message.error) pending.reject(new RopeError(message.error, pending.method));
    else pending.resolve(message.result);
  }

  /**
   * A (new) snapshot replaces the mirror; what it no longer lists is reported closed.
   * @param {RopeObject[]} objects
   */
  #snapshot(objects) {
    const old = this.mirror;
    this.mirror = new Map(objects.map((object) => [object.id, object]));
    for (const object of old.values()) {
      if (!this.mirror.has(object.id)) this.emit('event', { object: object.id, objectType: object.objectType, name: 'closed', data: null });
    }
    for (const object of this.mirror.values()) {
      const before = old.get(object.id);
      if (!before) this.emit('event', { object: object.id, objectType: object.objectType, name: 'created', data: object.state });
      else if (JSON.stringify(before.state) !== JSON.stringify(object.state)) {
        this.emit('event', { object: object.id, objectType: object.objectType, name: 'changed', data: object.state });
      }
    }
    this.emit('snapshot', objects);
    if (this.#droppedAt) {
      this.#droppedAt = 0;
      this.#delay = 100;
      this.emit('reconnected');
    }
  }

  /** @param {RopeEvent} event */
  #event(event) {
    if (event.name === 'created' || event.name === 'changed') {
      this.mirror.set(event.object, { id: event.object, objectType: event.objectType, state: event.data });
    } else if (event.name === 'closed') {
      this.mirror.delete(event.object);
    }
    this.emit('event', event);
  }
}

/**
 * Connects to a node and joins a room there ({@link Room.join}); leaving the
 * room also closes this connection.
 * @param {string} url the node's `ws://HOST:PORT/v1/rope`
 * @param {string} name the room's id (as a stream id: `A-Z a-z 0-9 - _ . :`)
 * @param {JoinOptions & {accessToken?: string}} [options]
 * @returns {Promise<Room>}
 */
export async function joinRoom(url, name, options = {}) {
  const rope = await Rope.connect(url, { accessToken: options.accessToken });
  try {
    const room = await Room.join(rope, name, options);
    room.on('left', () => rope.close());
    return room;
  } catch (error) {
    rope.close();
    throw error;
  }
}

/**
 * @typedef {object} JoinOptions
 * @property {Record<string, any>} [appData] the member's `appData` for the
 *   node, and added to every producer's `appData` (at most 2 KiB in all)
 * @property {boolean} [consumeAll] play every producer of the others as it
 *   appears (default true); when false, call {@link Room#consume}
 */

/**
 * A consumer of a room producer: mediasoup-client's, and the node's id for it.
 * @typedef {object} RoomConsumer
 * @property {import('mediasoup-client').types.Consumer} consumer its `track` plays the producer
 * @property {RoomProducer} producer
 */

/**
 * The app's membership of one room.
 *
 * Events:
 * - `producers` (RoomProducer[]): the room's producers changed (one came,
 *   paused, resumed or went, at any node);
 * - `consumer` ({@link RoomConsumer}): a producer of another member plays;
 * - `consumerclose` ({@link RoomConsumer}): it no longer does (its producer
 *   closed, its node left or died);
 * - `producerclose` (mediasoup-client Producer): the node closed one of ours;
 * - `error` (Error): something failed in the background (a consume, ICE or DTLS);
 * - `left` (string: why: `left`, `closed` by the node, `disconnected` for
 *   good): the room is over for this app.
 */
export class Room extends Emitter {
  /** A random id put in the `appData` of this member's producers, to tell them from the others'. */
  participant = crypto.randomUUID();
  /** @type {Map<string, RoomConsumer>} what this member plays, by producer id */
  consumers = new Map();
  /** @type {Map<string, import('mediasoup-client').types.Producer>} what this member publishes, by producer id */
  producers = new Map();
  #rope;
  #device;
  #objectId;
  #appData;
  #consumeAll;
  /** @type {RoomState} */
  #state;
  /** @type {Promise<import('mediasoup-client').types.Transport> | null} */
  #send = null;
  /** @type {Promise<import('mediasoup-client').types.Transport> | null} */
  #recv = null;
  /** @type {Map<string, Promise<RoomConsumer | null>>} consumes in flight, by producer id */
  #consuming = new Map();
  /** @type {Map<string, string>} the node's object id of each consumer, to its producer's id */
  #consumerObjects = new Map();
  #left = false;
  #leaving = false;
  #stop;

  /**
   * Joins room `name` over `rope` (`room.join`) and loads a mediasoup-client
   * Device with the room's capabilities.
   * @param {Rope} rope
   * @param {string} name
   * @param {JoinOptions} [options]
   * @returns {Promise<Room>}
   */
  static async join(rope, name, options = {}) {
    const params = options.appData ? { room: name, appData: options.appData } : { room: name };
    const answer = await rope.call('room.join', params);
    const device = new Device();
    await device.load({ routerRtpCapabilities: answer.rtpCapabilities });
    return new Room(rope, device, answer, options);
  }

  /**
   * Use {@link Room.join} or {@link joinRoom}.
   * @param {Rope} rope
   * @param {Device} device
   * @param {RoomState & {id: string}} answer
   * @param {JoinOptions} options
   */
  constructor(rope, device, answer, options) {
    super();
    this.#rope = rope;
    this.#device = device;
    this.#objectId = answer.id;
    this.#appData = options.appData ?? {};
    this.#consumeAll = options.consumeAll ?? true;
    // The mirror has the room as it is now: it may have changed while the Device loaded.
    this.#state = rope.mirror.get(answer.id)?.state ?? {
      rtpCapabilities: answer.rtpCapabilities,
      producers: answer.producers,
      nodes: answer.nodes,
    };
    this.#stop = [
      rope.on('event', (/** @type {RopeEvent} */ event) => this.#onEvent(event)),
      rope.on('disconnected', () => this.#end('disconnected')),
      // Consumes that failed while the connection was down are tried again.
      rope.on('reconnected', () => this.#sync()),
    ];
    queueMicrotask(() => this.#sync());
  }

  /** The room's id (`room.join`'s `room`). */
  get name() {
    return this.#objectId.slice('room:'.length);
  }

  /** Every producer of the room, at every node, this member's included. */
  get roomProducers() {
    return this.#state.producers;
  }

  /** The peer ids of the nodes with members in the room. */
  get nodes() {
    return this.#state.nodes;
  }

  /** The mediasoup-client Device loaded with the room's capabilities. */
  get device() {
    return this.#device;
  }

  /**
   * Publishes every track of `media` (a MediaStream or tracks) in the room.
   * @param {MediaStream | MediaStreamTrack[]} media
   * @param {Record<string, any>} [appData] for these producers, besides the member's
   * @returns {Promise<import('mediasoup-client').types.Producer[]>}
   */
  async publish(media, appData = {}) {
    const tracks = Array.isArray(media) ? media : media.getTracks();
    const transport = await this.#transport('send');
    const made = [];
    for (const track of tracks) {
      if (!this.#device.canProduce(/** @type {'audio' | 'video'} */ (track.kind))) {
        throw new Error(`the room's codecs cannot carry this ${track.kind}`);
      }
      const producer = await transport.produce({
        track,
        appData: { ...this.#appData, ...appData, participant: this.participant },
      });
      this.producers.set(producer.id, producer);
      made.push(producer);
    }
    return made;
  }

  /**
   * Plays room producer `producerId` (done for every other member's producer
   * unless `consumeAll` is false). Resolves with its consumer, or null when
   * the producer went meanwhile.
   * @param {string} producerId
   * @returns {Promise<RoomConsumer | null>}
   */
  consume(producerId) {
    const known = this.consumers.get(producerId);
    if (known) return Promise.resolve(known);
    let consuming = this.#consuming.get(producerId);
    if (!consuming) {
      consuming = this.#consume(producerId).finally(() => this.#consuming.delete(producerId));
      this.#consuming.set(producerId, consuming);
    }
    return consuming;
  }

  /** Leaves the room: the node closes this member's producers at every node. */
  async leave() {
    if (this.#left) return;
    this.#leaving = true;
    try {
      await this.#rope.call('leave', null, this.#objectId);
    } finally {
      this.#end('left');
    }
  }

  /**
   * @param {string} producerId
   * @returns {Promise<RoomConsumer | null>}
   */
  async #consume(producerId) {
    const producer = this.#state.producers.find((p) => p.id === producerId);
    if (!producer) throw new Error(`room ${this.name} has no producer ${producerId}`);
    const transport = await this.#transport('recv');
    // Paused until mediasoup-client is ready for it, so the first key frame is not lost.
    const answer = await this.#rope.call(
      'consume',
      { producerId, rtpCapabilities: this.#device.rtpCapabilities, paused: true },
      transport.id,
    );
    const objectId = answer.objectId ?? answer.id;
    this.#consumerObjects.set(objectId, producerId);
    const consumer = await transport.consume({
      id: answer.id,
      producerId: answer.producerId,
      kind: answer.kind,
      rtpParameters: answer.rtpParameters,
      appData: { producer },
    });
    // Its producer (or the room) may have gone while mediasoup-client set it up:
    // the node then closed the consumer (#onEvent forgot it) or the room no longer lists it.
    const gone = !this.#consumerObjects.has(objectId) || !this.#state.producers.some((p) => p.id === producerId);
    if (this.#left || gone) {
      consumer.close();
      return null;
    }
    const entry = { consumer, producer };
    this.consumers.set(producerId, entry);
    await this.#rope.call('resume', null, objectId);
    this.emit('consumer', entry);
    return entry;
  }

  /**
   * The send or the receive transport, made on first use.
   * @param {'send' | 'recv'} direction
   */
  #transport(direction) {
    if (this.#left) return Promise.reject(new Error(`not in room ${this.name}`));
    if (direction === 'send') return (this.#send ??= this.#makeTransport('send'));
    return (this.#recv ??= this.#makeTransport('recv'));
  }

  /** @param {'send' | 'recv'} direction */
  async #makeTransport(direction) {
    const answer = await this.#rope.call('createWebRtcTransport', {}, this.#objectId);
    const options = {
      id: answer.id,
      iceParameters: answer.iceParameters,
      iceCandidates: answer.iceCandidates,
      dtlsParameters: answer.dtlsParameters,
    };
    const transport =
      direction === 'send' ? this.#device.createSendTransport(options) : this.#device.createRecvTransport(options);
    transport.on('connect', ({ dtlsParameters }, done, fail) => {
      this.#rope.call('connect', { dtlsParameters }, transport.id).then(done, fail);
    });
    transport.on('produce', ({ kind, rtpParameters, appData }, done, fail) => {
      this.#rope.call('produce', { kind, rtpParameters, appData }, transport.id).then(({ id }) => done({ id }), fail);
    });
    transport.on('connectionstatechange', (state) => {
      if (state === 'failed') this.emit('error', new Error(`the ${direction} transport failed (ICE or DTLS): no media flows`));
    });
    return transport;
  }

  /** @param {RopeEvent} event */
  #onEvent(event) {
    if (event.object === this.#objectId) {
      if (event.name === 'changed') {
        this.#state = event.data;
        this.emit('producers', this.#state.producers);
        this.#sync();
      } else if (event.name === 'closed') {
        this.#end(this.#leaving ? 'left' : 'closed');
      }
      return;
    }
    if (event.name !== 'closed') return;
    const producerId = this.#consumerObjects.get(event.object);
    if (producerId !== undefined) {
      this.#consumerObjects.delete(event.object);
      this.#dropConsumer(producerId);
      // The node closed it while the room still lists its producer: play it again.
      setTimeout(() => this.#sync(), RECONSUME_DELAY);
    }
    const producer = this.producers.get(event.object);
    if (producer) {
      this.producers.delete(event.object);
      producer.close();
      this.emit('producerclose', producer);
    }
  }

  /** Plays what is new, lets go of what went. */
  #sync() {
    if (this.#left) return;
    const listed = new Set(this.#state.producers.map((p) => p.id));
    for (const producerId of this.consumers.keys()) {
      if (!listed.has(producerId)) this.#dropConsumer(producerId);
    }
    if (!this.#consumeAll) return;
    for (const producer of this.#state.producers) {
      const mine = this.producers.has(producer.id) || producer.appData?.participant === this.participant;
      if (mine || this.consumers.has(producer.id) || this.#consuming.has(producer.id)) continue;
      this.consume(producer.id).catch((error) => {
        // A producer that went before it could be consumed is not an error.
        if (this.#state.producers.some((p) => p.id === producer.id)) this.emit('error', error);
      });
    }
  }

  /** @param {string} producerId */
  #dropConsumer(producerId) {
    const entry = this.consumers.get(producerId);
    if (!entry) return;
    this.consumers.delete(producerId);
    entry.consumer.close();
    this.emit('consumerclose', entry);
  }

  /** @param {string} reason */
  #end(reason) {
    if (this.#left) return;
    this.#left = true;
    this.#stop.forEach((off) => off());
    for (const producerId of [...this.consumers.keys()]) this.#dropConsumer(producerId);
    for (const producer of this.producers.values()) producer.close();
    this.producers.clear();
    for (const transport of [this.#send, this.#recv]) transport?.then((t) => t.close(), () => {});
    this.emit('left', reason);
  }
}
