// Drives headless Chromium (Debian's) with playwright-core on a node's swarm
// monitor page (GET /monitor) and reports what the page shows while the
// caller changes the swarm.
//
// node drive-monitor.mjs --url http://HOST:PORT/monitor [--token T] [--seconds N] [--screenshot FILE]
//
// Opens the page (with ?token=T when given: the page stores it and removes it
// from the address), then every 200 ms reads `window.monitorState` and prints
// one JSON line on stdout whenever what it shows changed:
//   {"t": <ms since start>, "state": {"updates", "seenFrom", "connected", "error",
//     "nodes": [{"peer", "health", "cpu" (rounded), "consumers", "clients", "overloaded"}],
//     "edges": [{"stream", "from", "to", "failed"}]}}
// ("updates", the count of views the page drew, is not a change by itself).
// Lines on stdin: `quit` ends the run; `screenshot PATH` saves a screenshot of
// the page and prints {"screenshot": PATH} (or {"screenshot": PATH, "error"}).
// It ends after --seconds (default 60) or at `quit` (stdin closing does not
// end it). With --screenshot FILE, a screenshot is taken just before the end.
// Exit 0 after --seconds or `quit`; on a failure (Chromium, the page) it
// prints {"t", "error"} and exits 1. Logs and the page's console go to stderr.
// The browser is always closed on exit.
import readline from 'node:readline';
import { chromium } from 'playwright-core';

const started = Date.now();
const since = () => Date.now() - started;

function log(text) {
  process.stderr.write(`[drive-monitor] ${text}\n`);
}

/** One JSON line on stdout, written at once. */
function emit(object) {
  process.stdout.write(`${JSON.stringify(object)}\n`);
}

/** --key value pairs. */
function parseArgs(argv) {
  const valued = new Set(['url', 'token', 'seconds', 'screenshot']);
  const args = {};
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].startsWith('--') ? argv[i].slice(2) : null;
    if (!valued.has(key)) throw new Error(`unknown argument ${argv[i]}`);
    if (argv[i + 1] === undefined || argv[i + 1].startsWith('--')) throw new Error(`--${key} needs a value`);
    args[key] = argv[++i];
  }
  if (!args.url) throw new Error('missing --url');
  args.seconds = Number(args.seconds ?? 60);
  if (!(args.seconds > 0)) throw new Error('--seconds must be a positive number');
  return args;
}

let args;
try {
  args = parseArgs(process.argv.slice(2));
} catch (error) {
  log(error.message);
  emit({ t: since(), error: error.message });
  process.exit(1);
}

let browser;
let closing;
/** Closes the browser once; exits with `code`. */
function finish(code) {
  closing ??= (async () => {
    clearTimeout(watchdog);
    try {
      await browser?.close();
    } catch (error) {
      log(`closing the browser: ${error.message}`);
    }
    process.exit(code);
  })();
  return closing;
}

// The whole run's limit: --seconds plus time to start and stop.
const WATCHDOG_MS = args.seconds * 1000 + 60000;
const watchdog = setTimeout(() => {
  emit({ t: since(), error: `watchdog: still running after ${WATCHDOG_MS / 1000} s` });
  setTimeout(() => process.exit(1), 5000).unref();
  finish(1);
}, WATCHDOG_MS);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => finish(0));

/** What the page shows, reduced to what the caller compares (cpu rounded). */
function reduce(state) {
  return {
    updates: state?.updates ?? 0,
    seenFrom: state?.seenFrom ?? null,
    connected: Boolean(state?.connected),
    error: state?.error ?? null,
    nodes: (state?.nodes ?? []).map((n) => ({
      peer: n.peer,
      health: n.health,
      cpu: Math.round(Number(n.cpu) || 0),
      consumers: n.consumers,
      clients: n.clients,
      overloaded: Boolean(n.overloaded),
    })),
    edges: (state?.edges ?? []).map((e) => ({ stream: e.stream, from: e.from, to: e.to, failed: Boolean(e.failed) })),
  };
}

async function run() {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--headless', '--no-sandbox',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
      '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1360, height: 820 } });
  const page = await context.newPage();
  page.on('console', (message) => process.stderr.write(`[page] ${message.text()}\n`));
  page.on('pageerror', (error) => process.stderr.write(`[page] page error: ${error.message}\n`));
  const url = new URL(args.url);
  if (args.token) url.searchParams.set('token', args.token);
  log(`opening ${args.url}${args.token ? ' (with the token)' : ''}`);
  await page.goto(url.toString());

  const screenshot = async (path) => {
    try {
      await page.screenshot({ path });
      emit({ screenshot: path });
    } catch (error) {
      emit({ screenshot: path, error: error.message });
    }
  };

  // stdin: `quit`, `screenshot PATH`.
  let quit = false;
  const commands = (async () => {
    const lines = readline.createInterface({ input: process.stdin });
    for await (const raw of lines) {
      const line = raw.trim();
      if (!line) continue;
      if (line === 'quit') {
        quit = true;
        return;
      }
      if (line.startsWith('screenshot ')) await screenshot(line.slice('screenshot '.length).trim());
      else log(`unknown command: ${line}`);
    }
  })().catch((error) => log(`stdin: ${error.message}`));

  // Sample the page every 200 ms; print when what it shows changed.
  let last = null;
  const deadline = started + args.seconds * 1000;
  while (!quit && Date.now() < deadline) {
    const state = reduce(await page.evaluate(() => window.monitorState ?? null));
    const { updates, ...compared } = state;
    const key = JSON.stringify(compared);
    if (key !== last) {
      last = key;
      emit({ t: since(), state });
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  if (args.screenshot) await screenshot(args.screenshot);
  void commands;
}

try {
  await run();
  await finish(0);
} catch (error) {
  log(error.stack || error.message);
  emit({ t: since(), error: error.message });
  await finish(1);
}
