// A userspace TCP proxy on loopback that adds latency: every chunk is forwarded rtt/2 ms after it
// arrived, in each direction, so a request/response exchange costs one extra RTT (a TLS handshake
// its round trips' worth). netem needs privileges and a network namespace; this needs neither.
// It counts the connections it accepted: the bench prints how many the daemon opened.
//
//   node bench/latency-proxy.mjs <rtt-ms> <upstream-host:port>     prints "listening <port>"
//   bench/remote.mjs imports startLatencyProxy().
import { createServer, connect } from 'node:net';
import { fileURLToPath } from 'node:url';

/**
 * Forward 127.0.0.1:<free port> → upstream with `rttMs` added per round trip. Chunks keep their
 * order: Node fires timers of the same duration in the order they were set.
 */
export async function startLatencyProxy({ rttMs, upstreamHost = '127.0.0.1', upstreamPort }) {
  const oneWay = rttMs / 2;
  const stats = { connections: 0, open: 0, maxOpen: 0 };
  const sockets = new Set();
  const pipe = (from, to) => {
    from.on('data', (chunk) => {
      setTimeout(() => {
        if (!to.destroyed) to.write(chunk);
      }, oneWay);
    });
    from.on('end', () => setTimeout(() => to.end(), oneWay));
    from.on('error', () => to.destroy());
    from.on('close', () => setTimeout(() => to.destroy(), oneWay));
  };
  const server = createServer({ noDelay: true }, (client) => {
    stats.connections++;
    stats.maxOpen = Math.max(stats.maxOpen, ++stats.open);
    const up = connect({ host: upstreamHost, port: upstreamPort, noDelay: true });
    sockets.add(client).add(up);
    client.on('close', () => {
      stats.open--;
      sockets.delete(client);
    });
    up.on('close', () => sockets.delete(up));
    pipe(client, up);
    pipe(up, client);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = server.address().port;
  return {
    port,
    url: `https://127.0.0.1:${port}`,
    stats,
    resetStats() {
      stats.connections = 0;
      stats.maxOpen = stats.open;
    },
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [rtt, upstream] = process.argv.slice(2);
  const m = /^(.*):(\d+)$/.exec(upstream ?? '');
  if (!rtt || !m) {
    console.error('usage: node bench/latency-proxy.mjs <rtt-ms> <upstream-host:port>');
    process.exit(2);
  }
  const p = await startLatencyProxy({ rttMs: Number(rtt), upstreamHost: m[1], upstreamPort: Number(m[2]) });
  console.log(`listening ${p.port}`);
}
