// What the STM and CSC emulators share when they start and stop: the --listen address, the bound
// URL, the env.sh a daemon sources, and a stop that closes the server before the token.
import type { Server } from 'node:https';
import { isIPv6 } from 'node:net';
import type { Logger } from 'pino';
import { EmulatorError } from './errors.js';
import type { EmulatorHsm } from './hsm.js';
import { writeSecret } from './pki.js';

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(listen.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new EmulatorError('SIGNBRIDGE_ERR_EMULATOR_CONFIG', `--listen "${listen}" is not host:port (e.g. 127.0.0.1:8443, or 127.0.0.1:0 for a free port)`);
  }
  return { host: (m[1] ?? m[2])!, port };
}

export function shellQuote(v: string): string {
  return `'${v.replace(/'/g, `'\\''`)}'`;
}

/**
 * Listen on host:port and resolve with the https:// URL a client uses (a wildcard address becomes
 * loopback). On failure the token is closed and the error says which port to choose instead.
 */
export async function listenHttps(server: Server, host: string, port: number, hsm: EmulatorHsm): Promise<string> {
  try {
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(port, host, () => {
        server.off('error', rej);
        res();
      });
    });
  } catch (e) {
    await hsm.close();
    const code = (e as NodeJS.ErrnoException).code;
    throw new EmulatorError(
      'SIGNBRIDGE_ERR_EMULATOR_CONFIG',
      code === 'EADDRINUSE' ? `${host}:${port} is in use: choose another --listen port (or :0 for a free one)` : `cannot listen on ${host}:${port}: ${(e as Error).message}`,
      { cause: e },
    );
  }
  const addr = server.address();
  const boundPort = typeof addr === 'object' && addr ? addr.port : port;
  const urlHost = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : isIPv6(host) ? `[${host}]` : host;
  return `https://${urlHost}:${boundPort}`;
}

/** env.sh (mode 0600: it holds secrets): the comment lines, then one `export` per variable in `order`. */
export function writeEnvScript(path: string, comments: string[], order: readonly string[], env: Record<string, string>): void {
  writeSecret(path, [...comments, ...order.map((k) => `export ${k}=${shellQuote(env[k]!)}`), ''].join('\n'));
}

/** A stop() that may be called any number of times: open connections are cut, then the token closed. */
export function stopOnce(server: Server, hsm: EmulatorHsm, logger: Logger, message: string): () => Promise<void> {
  let stopping: Promise<void> | undefined;
  return () => {
    stopping ??= (async () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
      await closed;
      await hsm.close();
      logger.info(message);
    })();
    return stopping;
  };
}
