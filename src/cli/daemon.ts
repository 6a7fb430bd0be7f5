import { parseArgs } from 'node:util';
import { sbError } from '../core/errors.js';
import { resolveConfig, type LogLevel } from '../daemon/config.js';
import { runDaemon } from '../daemon/index.js';
import { createLogger } from '../daemon/logger.js';
import { loadAddon } from '../native/loader.js';

export const DAEMON_HELP = `Usage: signbridge daemon --backend pkcs11 --pkcs11-library <path> --token-label <label>
                        [--pin-file <file>] [--socket <path>] [--config <file>] [--log-level <lvl>]

Runs the signbridge daemon: it signs for libsignbridge-pkcs11.so over a unix socket.

Options (each also a key of the same name in the --config JSON file; flags win over the
environment, which wins over the file):
  --backend <name>            pkcs11 (a local PKCS#11 token)
  --pkcs11-library <path>     the token's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so
  --token-label <label>       the token to use (or --slot-index <n>)
  --slot-index <n>            index among slots with a token present
  --pin-file <file>           file holding the token's user PIN (mode 0600); else $SIGNBRIDGE_PIN.
                              The PIN is never accepted as a flag.
  --socket <path>             default: $SIGNBRIDGE_SOCKET, else $XDG_RUNTIME_DIR/signbridge/signbridge.sock,
                              else /tmp/signbridge-<uid>/signbridge.sock
  --config <file>             JSON file with any of the options above
  --log-level <lvl>           fatal, error, warn, info (default), debug, trace, silent
  --sync-threshold-us <n>     keys signing faster than this (µs, moving average) sign on the event
                              loop; slower ones on the thread pool (default 1000)
  --max-async-sessions <n>    token sessions for thread-pool signatures (default 4)

Logs go to stderr (JSON lines). Stop with SIGTERM or Ctrl-C: in-flight signatures finish first.

Exit codes: 0 stopped cleanly; 1 unexpected failure; 2 usage/configuration error (flags, config,
PIN file); 3 the backend could not start (library, token, PIN); 4 the socket is in use by another
daemon or its directory is unsafe.
`;

export async function runDaemonCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      backend: { type: 'string' },
      'pkcs11-library': { type: 'string' },
      'token-label': { type: 'string' },
      'slot-index': { type: 'string' },
      'pin-file': { type: 'string' },
      socket: { type: 'string' },
      config: { type: 'string' },
      'log-level': { type: 'string' },
      'sync-threshold-us': { type: 'string' },
      'max-async-sessions': { type: 'string' },
      pin: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(DAEMON_HELP);
    return 0;
  }
  if (values.pin !== undefined) {
    // Refuse outright: a PIN in argv is visible to every user through ps/proc.
    throw sbError('SIGNBRIDGE_ERR_USAGE', { detail: '--pin is not accepted (argv is visible to other users): use SIGNBRIDGE_PIN or --pin-file', command: 'daemon' });
  }
  const { help: _h, pin: _p, ...flags } = values;
  const cfg = resolveConfig(flags);
  const logger = createLogger(cfg.logLevel as LogLevel);
  let peerCredentials: ((fd: number) => { pid: number; uid: number; gid: number }) | undefined;
  try {
    peerCredentials = loadAddon().peerCredentials;
  } catch (e) {
    logger.warn({ err: (e as Error).message }, 'peer credentials unavailable; connections are logged without pid/uid');
  }
  return runDaemon(cfg, { logger, peerCredentials });
}
