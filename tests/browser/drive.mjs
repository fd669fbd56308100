// Drives headless Chromium (Debian's) with playwright-core: page 1 publishes
// the fake camera and microphone at one node, page 2 plays the stream from
// another; prints the receiving page's stats as JSON and saves a screenshot.
// With --status URL, the consuming node's /v1/status is fetched while the
// stream plays and included in the result (to show the path it came by).
//
// node drive.mjs --publish ws://A/v1/rope --consume ws://C/v1/rope --stream ID \
//     [--screenshot FILE] [--status http://C/v1/status] [--page-host IP] [--page-port PORT]
// node drive.mjs --break-dtls ws://A/v1/rope --stream ID
//     publishes with a wrong DTLS fingerprint and reports what the page shows.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => (arg.startsWith('--') ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), []),
);
for (const key of args['break-dtls'] ? ['stream'] : ['publish', 'consume', 'stream']) {
  if (!args[key]) throw new Error(`missing --${key}`);
}

// Bundle the page with mediasoup-client into a temporary directory and serve it.
const site = fs.mkdtempSync(path.join(os.tmpdir(), 'mafalda-page-'));
fs.copyFileSync(path.join(here, 'page/index.html'), path.join(site, 'index.html'));
await esbuild.build({
  entryPoints: [path.join(here, 'page/app.js')],
  bundle: true,
  format: 'esm',
  outfile: path.join(site, 'app.js'),
  logLevel: 'error',
});
const server = http.createServer((request, response) => {
  const file = path.join(site, new URL(request.url, 'http://x').pathname === '/' ? 'index.html' : path.basename(new URL(request.url, 'http://x').pathname));
  fs.readFile(file, (error, body) => {
    if (error) return response.writeHead(404).end();
    response.writeHead(200, { 'content-type': file.endsWith('.js') ? 'text/javascript' : 'text/html' }).end(body);
  });
});
// --page-host and --page-port: the nodes only let pages of origins they were told about open /v1/rope.
const host = args['page-host'] ?? '127.0.0.1';
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(args['page-port'] ?? 0), host, resolve);
});
const origin = `http://${host}:${server.address().port}`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--headless', '--no-sandbox',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--allow-loopback-in-peer-connection',
  ],
});
const result = { ok: false };
try {
  const context = await browser.newContext({ viewport: { width: 800, height: 560 } });
  const open = async (role, ws) => {
    const page = await context.newPage();
    page.on('console', (message) => process.stderr.write(`[${role}] ${message.text()}\n`));
    const query = new URLSearchParams({ ws, stream: args.stream, role });
    await page.goto(`${origin}/?${query}`);
    await page.waitForFunction(() => window.mafaldaReady || window.mafaldaError, null, { timeout: 30000 });
    const error = await page.evaluate(() => window.mafaldaError);
    if (error) throw new Error(`${role} page: ${error}`);
    return page;
  };
  if (args['break-dtls']) {
    const page = await context.newPage();
    const query = new URLSearchParams({ ws: args['break-dtls'], stream: args.stream, role: 'publish', breakDtls: '1' });
    await page.goto(`${origin}/?${query}`);
    await page.waitForFunction(() => window.mafaldaFailed || window.mafaldaError, null, { timeout: 30000 });
    // Give late progress a chance to (wrongly) replace the error on screen.
    await page.waitForTimeout(1000);
    result.status = await page.evaluate(() => document.getElementById('status').textContent);
    result.ok = result.status.startsWith('error:') && result.status.includes('failed');
  } else {
    await open('publish', args.publish);
    const player = await open('consume', args.consume);
    const sample = () => player.evaluate(() => window.mafaldaStats());
    await player.waitForTimeout(4000);
    const first = await sample();
    await player.waitForTimeout(3000);
    const second = await sample();
    result.first = first;
    result.second = second;
    result.status = await player.evaluate(() => document.getElementById('status').textContent);
    if (args.status) result.node = await (await fetch(args.status)).json();
    if (args.screenshot) await player.screenshot({ path: args.screenshot });
    result.ok = second.bytesReceived > first.bytesReceived && second.framesDecoded > first.framesDecoded && first.framesDecoded > 0;
  }
} catch (error) {
  result.error = error.message;
} finally {
  await browser.close();
  server.close();
  fs.rmSync(site, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
