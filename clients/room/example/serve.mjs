// Bundles the room example (app.js with ../room.js and mediasoup-client) with
// esbuild and serves it on 127.0.0.1. Open the URL it prints with
// ?node=ws://127.0.0.1:7700/v1/rope&room=ID&name=YOU; the node must let the
// page's origin in (`mafalda-node run --api-origins http://127.0.0.1:8080`).
//
//   node serve.mjs [--port 8080]
//
// `startServer` does the same for the browser tests.
import http from 'node:http';
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * Bundles the page and serves it on `host`:`port` (0: any free port).
 * @param {{host?: string, port?: number}} [options]
 * @returns {Promise<{url: string, close: () => void}>}
 */
export async function startServer({ host = '127.0.0.1', port = 0 } = {}) {
  const built = await esbuild.build({
    entryPoints: [path.join(here, 'app.js')],
    bundle: true,
    format: 'esm',
    write: false,
    outfile: 'app.js',
    logLevel: 'error',
  });
  const files = {
    '/': { type: 'text/html', body: fs.readFileSync(path.join(here, 'index.html')) },
    '/app.js': { type: 'text/javascript', body: built.outputFiles[0].contents },
  };
  const server = http.createServer((request, response) => {
    const file = files[new URL(request.url ?? '/', 'http://x').pathname];
    if (!file) return response.writeHead(request.url === '/favicon.ico' ? 204 : 404).end();
    response.writeHead(200, { 'content-type': file.type }).end(file.body);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return { url: `http://${host}:${server.address().port}/`, close: () => server.close() };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const at = process.argv.indexOf('--port');
  const { url } = await startServer({ port: at > 0 ? Number(process.argv[at + 1]) : 8080 });
  console.log(`room example at ${url}?node=ws://127.0.0.1:7700/v1/rope&room=demo&name=you`);
}
