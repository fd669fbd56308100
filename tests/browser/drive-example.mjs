// Drives headless Chromium (Debian's) with playwright-core against the page of
// clients/remote-mediasoup/example (which the example app serves itself):
// waits until it plays, samples its inbound video stats twice, 3 s apart, and
// prints them as JSON ({ok, first, second, status}); ok only when decoded
// frames and received bytes grew and frames were decoded before the first sample.
//
// node drive-example.mjs --page http://127.0.0.1:PORT/ [--screenshot FILE]
import { chromium } from 'playwright-core';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => (arg.startsWith('--') ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), []),
);
if (!args.page) throw new Error('missing --page');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--headless', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--allow-loopback-in-peer-connection',
  ],
});
const result = { ok: false };
try {
  const page = await browser.newPage({ viewport: { width: 640, height: 520 } });
  page.on('console', (message) => process.stderr.write(`[page] ${message.text()}\n`));
  await page.goto(args.page);
  await page.waitForFunction(() => window.exampleReady || window.exampleError, null, { timeout: 30000 });
  const error = await page.evaluate(() => window.exampleError);
  if (error) throw new Error(`page: ${error}`);
  const sample = () => page.evaluate(() => window.exampleStats());
  await page.waitForTimeout(3000);
  result.first = await sample();
  await page.waitForTimeout(3000);
  result.second = await sample();
  result.status = await page.evaluate(() => document.getElementById('status').textContent);
  if (args.screenshot) await page.screenshot({ path: args.screenshot });
  const { first, second } = result;
  result.ok = first.framesDecoded > 0 && second.framesDecoded > first.framesDecoded && second.bytesReceived > first.bytesReceived;
} catch (error) {
  result.error = error.message;
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
