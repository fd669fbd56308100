// The example's page: plays the app's VP8 track with mediasoup-client over a
// receive-only WebRTC transport. Bundled by the app with esbuild.
import { Device } from 'mediasoup-client';

const statusBox = document.getElementById('status');
const video = document.getElementById('video');

/** One signalling call: POST {method, ...params} to the app, its JSON answer back. */
async function signal(method, params = {}) {
  const response = await fetch('/signal', { method: 'POST', body: JSON.stringify({ method, ...params }) });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error);
  return answer;
}

async function main() {
  const device = new Device();
  await device.load({ routerRtpCapabilities: await signal('rtpCapabilities') });
  const transport = device.createRecvTransport(await signal('createTransport'));
  // mediasoup-client asks for this when it first needs DTLS (on consume).
  transport.on('connect', ({ dtlsParameters }, done, fail) => {
    signal('connect', { transportId: transport.id, dtlsParameters }).then(done, fail);
  });
  const consumer = await transport.consume(
    await signal('consume', { transportId: transport.id, rtpCapabilities: device.rtpCapabilities }),
  );
  video.srcObject = new MediaStream([consumer.track]);
  // The app made the consumer paused; the track is ready now.
  await signal('resume', { consumerId: consumer.id });
  window.exampleTransport = transport;
  statusBox.textContent = 'playing';
}

/** Inbound video so far, from WebRTC's stats (for tests and the curious). */
window.exampleStats = async () => {
  const totals = { bytesReceived: 0, framesDecoded: 0 };
  if (!window.exampleTransport) return totals;
  (await window.exampleTransport.getStats()).forEach((report) => {
    if (report.type === 'inbound-rtp' && report.kind === 'video') {
      totals.bytesReceived += report.bytesReceived || 0;
      totals.framesDecoded += report.framesDecoded || 0;
    }
  });
  return totals;
};

main().then(
  () => { window.exampleReady = true; },
  (error) => {
    statusBox.textContent = `error: ${error.message}`;
    window.exampleError = error.message;
  },
);
