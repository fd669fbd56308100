// Drives headless Chromium (Debian's) with playwright-core against a node's
// WHIP (RFC 9725) and WHEP endpoints, with no SDK: the page (whip-page/) uses
// the browser's bare RTCPeerConnection and fetch. Page 1 publishes the fake
// camera and microphone with WHIP, page 2 plays the stream with WHEP; the
// player's stats are sampled twice, 3 s apart; then the publisher DELETEs its
// session and the player is watched until its media stops.
//
// node drive-whip.mjs --whip http://A/v1/streams/ID/whip --whep http://B/v1/streams/ID/whep \
//     [--token T] [--page-host IP] [--page-port PORT] [--simulcast] [--screenshot FILE] [--status http://B/v1/status]
// node drive-whip.mjs --vanish --whip URL --whep URL [--token T] [--page-host IP] [--page-port PORT]
//     publishes and plays, then kills Chromium (SIGKILL, no DELETE): {ok, killed: pid}.
// node drive-whip.mjs --bad-token --whip http://A/v1/streams/ID/whip [--page-host IP] [--page-port PORT]
//     POSTs the publisher's real offer with `Authorization: Bearer wrong`:
//     {ok: status === 401, status, body} (the page must be able to read the 401: CORS on errors).
//
// Prints exactly one JSON object on stdout and exits 0, also on failure
// ({ok: false, error}); logs and the pages' consoles go to stderr. Fields:
// ok, first, second (the player's stats: framesDecoded, bytesReceived,
// packetsReceived, videoCodec, audioBytesReceived, connectionState, ...),
// videoCodec, publisherStats (outbound encodings, one per rid with --simulcast),
// publisherOffer, publisherAnswer, playerAnswer, whipLocation, whepLocation,
// statusDuringPlay, statusAfterDelete (with --status), deleteStatus,
// afterDelete {connectionState, bytesStalled, samples, ms, publisherConnectionState},
// playerDeleteStatus (the player's own DELETE at the end; information only), error.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const site = path.join(here, 'whip-page');
// The whole run's limit (DRIVE_WHIP_WATCHDOG_MS only to test the watchdog itself).
const WATCHDOG_MS = Number(process.env.DRIVE_WHIP_WATCHDOG_MS || 90000);

const result = { ok: false };
let step = 'starting';
let browser;
let server;
let printed = false;
let cleaning;
let watchdogFired = false;

function log(text) {
  process.stderr.write(`[drive-whip] ${text}\n`);
}

function print() {
  if (printed) return;
  printed = true;
  if (result.error) result.ok = false;
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/** Closes the browser and the page server, once. */
function cleanup() {
  cleaning ??= (async () => {
    try {
      await browser?.close();
    } catch (error) {
      log(`closing the browser: ${error.message}`);
    }
    if (server) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  })();
  return cleaning;
}

const watchdog = setTimeout(async () => {
  watchdogFired = true;
  result.error = `watchdog: still ${step} after ${WATCHDOG_MS / 1000} s${result.error ? ` (and earlier: ${result.error})` : ''}`;
  setTimeout(() => {
    print();
    process.exit(0);
  }, 5000).unref();
  await cleanup();
  print();
  process.exit(0);
}, WATCHDOG_MS);

/** --key value pairs; --simulcast and --bad-token stand alone. */
function parseArgs(argv) {
  const flags = new Set(['simulcast', 'bad-token', 'vanish']);
  const valued = new Set(['whip', 'whep', 'token', 'page-host', 'page-port', 'screenshot', 'status']);
  const args = {};
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].startsWith('--') ? argv[i].slice(2) : null;
    if (flags.has(key)) args[key] = true;
    else if (valued.has(key)) {
      if (argv[i + 1] === undefined || argv[i + 1].startsWith('--')) throw new Error(`--${key} needs a value`);
      args[key] = argv[++i];
    } else throw new Error(`unknown argument ${argv[i]}`);
  }
  for (const key of args['bad-token'] ? ['whip'] : ['whip', 'whep']) {
    if (!args[key]) throw new Error(`missing --${key}`);
  }
  return args;
}

/** Serves whip-page/ on host:port (--page-host and --page-port: the nodes allow only origins they were told about). */
async function serve(host, port) {
  const made = http.createServer((request, response) => {
    const name = new URL(request.url, 'http://x').pathname === '/' ? 'index.html' : path.basename(new URL(request.url, 'http://x').pathname);
    fs.readFile(path.join(site, name), (error, body) => {
      if (error) return response.writeHead(404).end();
      response.writeHead(200, { 'content-type': name.endsWith('.js') ? 'text/javascript' : 'text/html' }).end(body);
    });
  });
  await new Promise((resolve, reject) => {
    made.once('error', reject);
    made.listen(port, host, resolve);
  });
  return made;
}

/** GET the node's status (with the token); never throws. */
async function status(url, token) {
  try {
    const response = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(5000) });
    const text = await response.text();
    try {
      return JSON.parse(text);
    } catch {
      return { httpStatus: response.status, text };
    }
  } catch (error) {
    return { error: `GET ${url}: ${error.message}` };
  }
}

async function run() {
  const args = parseArgs(process.argv.slice(2));
  step = 'starting the page server';
  const host = args['page-host'] ?? '127.0.0.1';
  server = await serve(host, Number(args['page-port'] ?? 0));
  const origin = `http://${host}:${server.address().port}`;
  log(`page at ${origin}`);

  step = 'launching chromium';
  const launch = {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--headless', '--no-sandbox',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
      '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
    ],
  };
  // --vanish needs the browser's process, to kill it as a crash or a pulled cable would.
  let chromiumServer;
  if (args.vanish) {
    chromiumServer = await chromium.launchServer(launch);
    browser = await chromium.connect(chromiumServer.wsEndpoint());
  } else {
    browser = await chromium.launch(launch);
  }
  const context = await browser.newContext({ viewport: { width: 800, height: 560 } });

  /** Opens the page in `role` at `url`; waits until it has negotiated (or failed). */
  const open = async (role, url, extra = {}) => {
    const page = await context.newPage();
    page.on('console', (message) => process.stderr.write(`[${role}] ${message.text()}\n`));
    page.on('pageerror', (error) => process.stderr.write(`[${role}] page error: ${error.message}\n`));
    const query = new URLSearchParams({ role, url, ...(args.token ? { token: args.token } : {}), ...extra });
    step = `opening the ${role} page`;
    await page.goto(`${origin}/?${query}`);
    step = `waiting for the ${role} page to negotiate`;
    let info = {};
    try {
      await page.waitForFunction(() => window.mafaldaReady || window.mafaldaError, null, { timeout: 30000 });
    } finally {
      // What the page got so far, also when it failed (e.g. the answer it could not apply).
      info = await page
        .evaluate(() => ({ offer: window.mafaldaOffer, answer: window.mafaldaAnswer, location: window.mafaldaLocation, error: window.mafaldaError, postStatus: window.mafaldaPostStatus }))
        .catch(() => ({}));
      if (role === 'publish') Object.assign(result, { whipLocation: info.location, publisherOffer: info.offer, publisherAnswer: info.answer });
      if (role === 'play') Object.assign(result, { whepLocation: info.location, playerAnswer: info.answer });
    }
    if (info.error) throw new Error(`${role} page: ${info.error}`);
    return page;
  };

  /** Waits until the page's RTCPeerConnection is connected (ICE and DTLS). */
  const connected = async (page, role) => {
    step = `waiting for the ${role} page to connect`;
    try {
      await page.waitForFunction(() => ['connected', 'failed', 'closed'].includes(window.mafaldaPc.connectionState), null, { timeout: 20000, polling: 100 });
    } catch (error) {
      const state = await page.evaluate(() => `${window.mafaldaPc.connectionState} (ICE ${window.mafaldaPc.iceConnectionState})`).catch(() => '?');
      throw new Error(`${role} page: not connected after 20 s: ${state}`);
    }
    const state = await page.evaluate(() => window.mafaldaPc.connectionState);
    if (state !== 'connected') throw new Error(`${role} page: the connection is ${state}`);
  };

  if (args['bad-token']) {
    const page = await open('badtoken', args.whip);
    const response = await page.evaluate(() => window.mafaldaResponse);
    Object.assign(result, { ok: response.status === 401, status: response.status, body: response.body });
    return;
  }

  const publisher = await open('publish', args.whip, args.simulcast ? { simulcast: '1' } : {});
  await connected(publisher, 'publish');
  const player = await open('play', args.whep);
  await connected(player, 'play');

  if (args.vanish) {
    // No DELETE, no pc.close(): the whole browser dies at once (its process group).
    step = 'killing chromium';
    const pid = chromiumServer.process().pid;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      process.kill(pid, 'SIGKILL');
    }
    browser = undefined;
    Object.assign(result, { ok: true, killed: pid });
    return;
  }

  const sample = () => player.evaluate(() => window.mafaldaStats());
  step = 'sampling the player';
  const first = await sample();
  result.first = first;
  await player.waitForTimeout(3000);
  const second = await sample();
  result.second = second;
  result.videoCodec = second.videoCodec;
  result.publisherStats = await publisher.evaluate(() => window.mafaldaStats());
  result.ok =
    second.framesDecoded > first.framesDecoded && second.bytesReceived > first.bytesReceived && second.audioBytesReceived > first.audioBytesReceived;
  if (args.status) {
    step = 'fetching the status during play';
    result.statusDuringPlay = await status(args.status, args.token);
  }
  if (args.screenshot) {
    step = 'taking the screenshot';
    await player.screenshot({ path: args.screenshot });
  }

  step = 'deleting the WHIP session';
  const deleted = await publisher.evaluate(() => window.deleteSession());
  result.deleteStatus = deleted.status;
  if (deleted.body) result.deleteBody = deleted.body;

  // Until the player's connection ends, or its video bytes stop growing for 3 s in a row (3 samples 1 s apart).
  step = 'watching the player after the delete';
  const started = Date.now();
  const samples = [];
  let last = await sample();
  samples.push({ ms: 0, connectionState: last.connectionState, bytesReceived: last.bytesReceived, framesDecoded: last.framesDecoded });
  let still = 0;
  let bytesStalled = false;
  while (Date.now() - started < 15000 && !['failed', 'disconnected', 'closed'].includes(last.connectionState)) {
    await player.waitForTimeout(1000);
    const now = await sample();
    samples.push({ ms: Date.now() - started, connectionState: now.connectionState, bytesReceived: now.bytesReceived, framesDecoded: now.framesDecoded });
    still = now.bytesReceived > last.bytesReceived ? 0 : still + 1;
    last = now;
    if (still >= 3) {
      bytesStalled = true;
      break;
    }
  }
  result.afterDelete = {
    connectionState: last.connectionState,
    bytesStalled,
    samples,
    ms: Date.now() - started,
    publisherConnectionState: await publisher.evaluate(() => window.mafaldaPc.connectionState),
  };
  if (args.status) {
    step = 'fetching the status after the delete';
    result.statusAfterDelete = await status(args.status, args.token);
  }
  step = 'deleting the WHEP session';
  result.playerDeleteStatus = await player
    .evaluate(() => window.deleteSession().then((answer) => answer.status))
    .catch((error) => `error: ${error.message}`);
}

try {
  await run();
} catch (error) {
  // After the watchdog, errors are only the browser closing under the run.
  if (!watchdogFired) result.error = error.message;
} finally {
  step = 'closing the browser';
  await cleanup();
}
clearTimeout(watchdog);
print();
process.exit(0);
