// The example page: publishes the camera and microphone as a stream, or plays
// a stream by id, through a Mafalda Swarm node's ROPE WebSocket API
// (JSON-RPC 2.0 with a `target` object id; see rope/PROTOCOL.md). Bundled
// with mediasoup-client (from npm) by esbuild at test time.
import { Device } from 'mediasoup-client';

const query = new URLSearchParams(location.search);
const statusBox = document.getElementById('status');
const video = document.getElementById('video');

function show(text) {
  // An error stays on screen: later progress must not hide it.
  if (!window.mafaldaFailed) statusBox.textContent = text;
}

/** A minimal ROPE client: calls and their answers, and the events this page cares about. */
class Rope {
  constructor(url) {
    this.next = 1;
    this.pending = new Map();
    this.socket = new WebSocket(url.includes('?') ? `${url}&format=json` : `${url}?format=json`);
    this.opened = new Promise((resolve, reject) => {
      this.socket.onopen = resolve;
      this.socket.onerror = () => reject(new Error(`cannot connect to ${url}`));
    });
    this.socket.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (data.method === 'rope.event') return this.onEvent(data.params);
      if (data.id === undefined || !this.pending.has(data.id)) return;
      const { resolve, reject } = this.pending.get(data.id);
      this.pending.delete(data.id);
      if (data.error) reject(new Error(`${data.error.message} (${data.error.code})`));
      else resolve(data.result);
    };
    this.socket.onclose = () => {
      for (const { reject } of this.pending.values()) reject(new Error('connection to the node closed'));
      this.pending.clear();
    };
  }

  /** The node tells what happens to our objects; a failed DTLS handshake must not be a silent black video. */
  onEvent(event) {
    if (event.objectType === 'webRtcTransport' && event.data && event.data.dtlsState === 'failed') {
      show(`error: the node reports that the DTLS handshake failed on transport ${event.object}: no media will flow`);
      window.mafaldaFailed = true;
    }
  }

  async call(method, params = null, target = undefined) {
    await this.opened;
    const id = this.next++;
    const request = { jsonrpc: '2.0', id, method, params };
    if (target) request.target = target;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.send(JSON.stringify(request));
    });
  }
}

async function transport(rope, device, direction) {
  const info = await rope.call('webrtc.createTransport');
  const options = {
    id: info.id,
    iceParameters: info.iceParameters,
    iceCandidates: info.iceCandidates,
    dtlsParameters: info.dtlsParameters,
  };
  const made = direction === 'send' ? device.createSendTransport(options) : device.createRecvTransport(options);
  made.on('connect', ({ dtlsParameters }, done, fail) => {
    if (query.has('breakDtls')) {
      // For the failure test: announce a fingerprint that is not ours.
      dtlsParameters.fingerprints = dtlsParameters.fingerprints.map((f) => ({ ...f, value: f.value.replace(/[0-9A-F]/g, '0') }));
    }
    rope.call('connect', { dtlsParameters }, info.id).then(done, fail);
  });
  made.on('connectionstatechange', (state) => {
    if (state === 'failed') {
      show('error: the WebRTC connection failed (ICE or DTLS): no media will flow');
      window.mafaldaFailed = true;
    }
  });
  return made;
}

async function publish(rope, device, stream) {
  const send = await transport(rope, device, 'send');
  send.on('produce', ({ kind, rtpParameters, appData }, done, fail) => {
    rope.call('produce', { stream, kind, rtpParameters, appData }, send.id).then(done, fail);
  });
  const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
  video.srcObject = media;
  for (const track of media.getTracks()) {
    if (!device.canProduce(track.kind)) throw new Error(`this node cannot receive ${track.kind}`);
    await send.produce({ track });
  }
  show(`publishing ${stream}`);
}

async function consume(rope, device, stream) {
  const recv = await transport(rope, device, 'recv');
  const offers = await rope.call('consume', { stream, rtpCapabilities: device.rtpCapabilities }, recv.id);
  const media = new MediaStream();
  for (const offer of offers) {
    const consumer = await recv.consume(offer);
    media.addTrack(consumer.track);
    await rope.call('resume', null, consumer.id);
  }
  video.srcObject = media;
  window.mafaldaReceiver = recv;
  show(`playing ${stream} (${offers.map((o) => o.kind).join(' + ')})`);
}

/** Inbound bytes and decoded video frames so far (for tests and curious people). */
window.mafaldaStats = async () => {
  const totals = { bytesReceived: 0, framesDecoded: 0 };
  if (!window.mafaldaReceiver) return totals;
  const stats = await window.mafaldaReceiver.getStats();
  stats.forEach((report) => {
    if (report.type === 'inbound-rtp') {
      totals.bytesReceived += report.bytesReceived || 0;
      totals.framesDecoded += report.framesDecoded || 0;
    }
  });
  return totals;
};

async function main() {
  const url = query.get('ws');
  const stream = query.get('stream');
  if (!url || !stream) throw new Error('give ?ws=ws://HOST:PORT/v1/rope&stream=ID');
  const rope = new Rope(url);
  const device = new Device();
  await device.load({ routerRtpCapabilities: await rope.call('router.rtpCapabilities') });
  if (query.get('role') === 'consume') await consume(rope, device, stream);
  else await publish(rope, device, stream);
  window.mafaldaReady = true;
}

main().catch((error) => {
  show(`error: ${error.message}`);
  window.mafaldaError = error.message;
  window.mafaldaFailed = true;
});
