// Drives pages of the room example (clients/room/example) in headless
// Chromium (Debian's) for tests/tests/rooms_browser.rs: the test says what to
// do, one JSON command per line on stdin, and reads one JSON answer per line
// on stdout ({cmd, ok, ...}; {ok: false, error} when it failed). The pages
// use Chromium's fake camera and microphone.
//
//   node drive-room.mjs [--page-host IP] [--page-port PORT]      then, on stdin:
//   {"cmd":"open","page":"p1","node":"ws://A/v1/rope","room":"R"}  → {published: {id: kind}}
//   {"cmd":"waitPlaying","page":"p1","producers":[ids],"timeout":ms} → {ms}: it plays them all
//   {"cmd":"waitGone","page":"p1","producers":[ids],"timeout":ms}    → {ms}: it plays none of them
//   {"cmd":"stats","page":"p1"}   → {stats: {producerId: {kind, framesDecoded, bytesReceived, ...}}, log}
//   {"cmd":"leave","page":"p1"}, {"cmd":"join","page":"p1"} → {state, published}
//   {"cmd":"waitReconnected","page":"p1","count":1,"timeout":ms} → {ms, state}: its connection came back
//   {"cmd":"screenshot","page":"p1","path":FILE}, {"cmd":"quit"}
import readline from 'node:readline';
import { chromium } from 'playwright-core';
import { startServer } from '../../clients/room/example/serve.mjs';

/** The value after `--name`, if given. */
function option(name) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : undefined;
}
// The nodes let only pages of origins they were told about open /v1/rope.
const site = await startServer({ host: option('page-host'), port: Number(option('page-port') ?? 0) });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--headless', '--no-sandbox',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
    '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
  ],
});
const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
/** @type {Map<string, import('playwright-core').Page>} */
const pages = new Map();

function page(name) {
  const found = pages.get(name);
  if (!found) throw new Error(`no page ${name}`);
  return found;
}

/** Waits until the page has joined (or failed); answers its producers. */
async function joined(p) {
  await p.waitForFunction(() => ['joined', 'error'].includes(window.roomExample?.state), null, { timeout: 30000 });
  const { state, error, published } = await p.evaluate(() => ({ ...window.roomExample, published: window.roomExample.published() }));
  if (state === 'error') throw new Error(`the page failed: ${error}`);
  return { state, published };
}

/** Polls until `check(playing ids)` holds in the page; answers how long it took. */
async function waitPlaying(p, producers, timeout, wantAll) {
  const started = Date.now();
  await p.waitForFunction(
    ({ producers, wantAll }) => {
      const playing = window.roomExample.playing();
      return wantAll ? producers.every((id) => id in playing) : !producers.some((id) => id in playing);
    },
    { producers, wantAll },
    { timeout, polling: 25 },
  );
  return { ms: Date.now() - started };
}

const commands = {
  async open({ page: name, node, room }) {
    const p = await context.newPage();
    p.on('console', (message) => process.stderr.write(`[${name}] ${message.text()}\n`));
    p.on('pageerror', (error) => process.stderr.write(`[${name}] page error: ${error.message}\n`));
    pages.set(name, p);
    await p.goto(`${site.url}?${new URLSearchParams({ node, room, name, ...(process.env.ROOM_DEBUG ? { debug: '1' } : {}) })}`);
    return joined(p);
  },
  waitPlaying: ({ page: name, producers, timeout = 20000 }) => waitPlaying(page(name), producers, timeout, true),
  waitGone: ({ page: name, producers, timeout = 5000 }) => waitPlaying(page(name), producers, timeout, false),
  async waitReconnected({ page: name, count = 1, timeout = 10000 }) {
    const started = Date.now();
    await page(name).waitForFunction((count) => window.roomExample.reconnections >= count, count, { timeout, polling: 50 });
    return { ms: Date.now() - started, state: await page(name).evaluate(() => window.roomExample.state) };
  },
  async stats({ page: name }) {
    return page(name).evaluate(async () => ({ stats: await window.roomExample.stats(), log: window.roomExample.log, state: window.roomExample.state }));
  },
  async leave({ page: name }) {
    const p = page(name);
    await p.evaluate(() => window.roomExample.leave());
    return p.evaluate(() => ({ state: window.roomExample.state, playing: window.roomExample.playing() }));
  },
  async join({ page: name }) {
    const p = page(name);
    await p.evaluate(() => window.roomExample.join());
    return joined(p);
  },
  async screenshot({ page: name, path }) {
    await page(name).screenshot({ path });
    return {};
  },
};

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const command = JSON.parse(line);
  if (command.cmd === 'quit') break;
  let answer;
  try {
    const run = commands[command.cmd];
    if (!run) throw new Error(`unknown command ${command.cmd}`);
    answer = { cmd: command.cmd, ok: true, ...(await run(command)) };
  } catch (error) {
    answer = { cmd: command.cmd, ok: false, error: error.message };
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}
await browser.close();
site.close();
