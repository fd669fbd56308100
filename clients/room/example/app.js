// The room example: joins the room the URL names at the node it names,
// publishes the camera and microphone, shows a tile for every producer of
// the others (wherever they joined) and drops it when it goes. A leave
// button leaves (and joins again). Bundled with mediasoup-client by serve.mjs.
//
// For tests, `window.roomExample` tells what the page does and plays.
import { Rope, Room } from '../room.js';

const query = new URLSearchParams(location.search);
const node = query.get('node');
const roomName = query.get('room');
const name = query.get('name') || `guest-${Math.floor(Math.random() * 1000)}`;
const statusBox = /** @type {HTMLElement} */ (document.getElementById('status'));
const tiles = /** @type {HTMLElement} */ (document.getElementById('tiles'));
const leaveButton = /** @type {HTMLButtonElement} */ (document.getElementById('leave'));
const localVideo = /** @type {HTMLVideoElement} */ (document.querySelector('#local video'));

/** @type {Room | null} */
let room = null;
/** @type {Rope | null} */
let rope = null;

const example = {
  /** 'joining' | 'joined' | 'left' | 'error' */
  state: 'starting',
  error: '',
  /** The connection to the node: 'connected' | 'reconnecting' | 'disconnected'. */
  connection: 'connected',
  /** How many times the connection came back with its session. */
  reconnections: 0,
  /** What happened to the others' producers since the last join, in order (`+ID` played, `-ID` stopped). */
  log: /** @type {string[]} */ ([]),
  /** Our own producers: their kinds, by id. */
  published: () => Object.fromEntries([...(room?.producers ?? new Map())].map(([id, producer]) => [id, producer.kind])),
  /** The producers we play, by id: their kind and appData. */
  playing: () => Object.fromEntries([...(room?.consumers ?? new Map())].map(([id, { producer }]) => [id, { kind: producer.kind, appData: producer.appData }])),
  /** Inbound RTP of each consumer, by producer id. */
  async stats() {
    /** @type {Record<string, {kind: string, framesDecoded: number, bytesReceived: number, packetsReceived: number}>} */
    const out = {};
    for (const [id, { consumer }] of room?.consumers ?? []) {
      const report = await consumer.getStats();
      report.forEach((s) => {
        if (s.type === 'inbound-rtp') {
          out[id] = { kind: consumer.kind, framesDecoded: s.framesDecoded ?? 0, bytesReceived: s.bytesReceived ?? 0, packetsReceived: s.packetsReceived ?? 0 };
        }
      });
    }
    return out;
  },
  leave: () => leave(),
  join: () => join(),
};
Object.assign(window, { roomExample: example });

function show(text) {
  statusBox.textContent = text;
}

/** @param {import('../room.js').RoomConsumer} entry */
function addTile({ consumer, producer }) {
  const tile = document.createElement('div');
  tile.className = `tile ${producer.kind}`;
  tile.dataset.producer = producer.id;
  const media = document.createElement(producer.kind === 'video' ? 'video' : 'audio');
  media.autoplay = true;
  media.setAttribute('playsinline', '');
  media.srcObject = new MediaStream([consumer.track]);
  const label = document.createElement('span');
  const who = producer.appData?.name ?? producer.appData?.who ?? producer.id.slice(0, 8);
  label.textContent = `${producer.kind} of ${who} (node …${producer.node.slice(-6)})`;
  tile.append(media, label);
  tiles.append(tile);
}

/** @param {string} producerId */
function removeTile(producerId) {
  tiles.querySelector(`[data-producer="${producerId}"]`)?.remove();
}

function describe() {
  if (!room) return;
  show(`in room ${room.name} at ${node}: ${room.nodes.length} node(s), ${room.roomProducers.length} producer(s), playing ${room.consumers.size}`);
}

async function join() {
  if (!node || !roomName) throw new Error('give ?node=ws://HOST:PORT/v1/rope&room=ID');
  example.state = 'joining';
  show(`joining ${roomName} at ${node}…`);
  if (!rope) {
    rope = await Rope.connect(node, { accessToken: query.get('token') ?? undefined });
    // ?debug: every event of the node on the console.
    if (query.has('debug')) rope.on('event', (e) => console.log(`event ${e.objectType} ${e.object} ${e.name} ${JSON.stringify(e.data)?.slice(0, 300)}`));
    rope.on('reconnecting', () => {
      example.connection = 'reconnecting';
      show('connection lost: reconnecting…');
    });
    rope.on('reconnected', () => {
      example.connection = 'connected';
      example.reconnections += 1;
      console.log('reconnected: the session is back');
      describe();
    });
    rope.on('disconnected', () => {
      example.connection = 'disconnected';
    });
  }
  const joined = await Room.join(rope, roomName, { appData: { name } });
  room = joined;
  example.log = [];
  joined.on('consumer', (entry) => {
    example.log.push(`+${entry.producer.id}`);
    console.log(`playing ${entry.producer.kind} ${entry.producer.id}`);
    addTile(entry);
    describe();
  });
  joined.on('consumerclose', ({ producer }) => {
    example.log.push(`-${producer.id}`);
    console.log(`stopped playing ${producer.kind} ${producer.id}`);
    removeTile(producer.id);
    describe();
  });
  joined.on('producers', describe);
  joined.on('error', (error) => console.warn(`room: ${error.message}`));
  joined.on('left', (reason) => {
    console.log(`left the room (${reason})`);
    example.state = 'left';
    if (reason === 'disconnected') rope = null;
    show(`left ${joined.name} (${reason})`);
    leaveButton.textContent = 'Join';
    localVideo.srcObject = null;
  });
  const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
  localVideo.srcObject = media;
  await joined.publish(media);
  example.state = 'joined';
  leaveButton.textContent = 'Leave';
  leaveButton.disabled = false;
  describe();
}

async function leave() {
  await room?.leave();
}

leaveButton.onclick = () => {
  leaveButton.disabled = true;
  const next = example.state === 'joined' ? leave().then(() => { leaveButton.disabled = false; }) : join();
  next.catch(fail);
};

/** @param {Error} error */
function fail(error) {
  example.state = 'error';
  // The node's errors are typed (a RopeError named after mediasoup's class).
  example.error = `${error.name}: ${error.message}`;
  show(`error: ${example.error}`);
}

document.getElementById('room')?.append(roomName ?? '');
join().catch(fail);
