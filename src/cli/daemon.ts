import { parseArgs } from 'node:util';
import { sbError } from '../core/errors.js';
import { resolveConfig, type LogLevel } from '../daemon/config.js';
import { runDaemon } from '../daemon/index.js';
import { createLogger } from '../daemon/logger.js';
import { loadAddon } from '../native/loader.js';

export const DAEMON_HELP = `Usage: signbridge daemon --backend pkcs11 --pkcs11-library <path> --token-label <label>
                        [--pin-file <file>] [--socket <path>] [--config <file>] [--log-level <lvl>]
       signbridge daemon --backend stm [--stm-host <url>] [--stm-client-cert-file <p12|pem>] …
       signbridge daemon --backend csc [--csc-url <url>] [--csc-client-secret-file <file>] …

Runs the signbridge daemon: it signs for libsignbridge-pkcs11.so over a unix socket.

Options (each also a key of the same name in the --config JSON file; flags win over the
environment, which wins over the file):
  --backend <name>            pkcs11 (a local PKCS#11 token), stm (DigiCert Software Trust Manager)
                              or csc (a CSC API v1 service: DigiCert Document Trust Manager)
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
  --max-async-sessions <n>    token sessions for thread-pool signatures (default: min(4, cores))

Who may sign, and the audit trail (README "Security model", "Audit log"):
  Only processes of the daemon's own uid may connect (SO_PEERCRED); others are refused and logged.
  --allow-uid <uid[,uid…]>    numeric uids that may connect besides the daemon's own, e.g. a build
                              user served by a daemon running as root (a system service)
  --client-secret-file <f>    file (mode 0600) holding a client secret: tokens then require a login,
                              and C_Login's PIN must match it (5 wrong PINs within 60 s lock logins
                              for that uid until the minute has passed)
  --audit-log <file>          one JSON line per signature, on disk before the signature is returned
                              (default: audit.log beside the socket; that directory is often a
                              tmpfs, so give a persistent path for a lasting trail)
  --audit-max-bytes <n>       rotate the audit log at this size (default 10485760)
  --audit-keep <n>            rotated audit logs kept: <file>.1 … <file>.<n> (default 5)

stm backend (docs/stm-backend.md; the SM_* variables are the ones DigiCert's own tools read):
  --stm-host <url>            $SM_HOST, e.g. https://clientauth.one.digicert.com
  --stm-client-cert-file <f>  $SM_CLIENT_CERT_FILE: the mTLS client certificate, PKCS#12 (.p12) or PEM
  --stm-client-key-file <f>   $SM_CLIENT_KEY_FILE: its PEM key, when the PEM certificate file has none
  --stm-ca-file <f>           $SIGNBRIDGE_STM_CA_FILE or $SM_CA_FILE: CA of the server certificate
                              (default: Node's bundled roots)
  --stm-api-key-file <f>      file holding the API key (mode 0600), else $SM_API_KEY (sent as x-api-key)
  --stm-client-cert-password-file <f>
                              file holding the PKCS#12 password, else $SM_CLIENT_CERT_PASSWORD
  --token-label <label>       the token label tools see (default signbridge-stm)
  --stm-key-filter <a,b>      serve only these certificate aliases / keypair aliases / keypair ids
  --stm-refresh-s <n>         re-list keys every n seconds (default 300; 0 = never); SIGHUP re-lists now
  --sign-timeout-ms <n>       deadline of one signature, retries included (default 30000)
  --verify-signatures <bool>  check each signature against the certificate before returning it
                              (default true)
  SM_TLS_SKIP_VERIFY=true     do not check the server certificate (tests only; logged as a warning)
  Secrets (API key, certificate password) are never accepted as flags or config keys.

csc backend (docs/csc-backend.md; the CSC emulator writes these variables to its env.sh):
  --csc-url <url>             $SIGNBRIDGE_CSC_URL: the service's base URL (endpoints under /csc/v1/)
  --csc-client-id <id>        $SIGNBRIDGE_CSC_CLIENT_ID: the OAuth 2.0 client
  --csc-client-secret-file <f>
                              file (mode 0600) holding the OAuth client secret, else
                              $SIGNBRIDGE_CSC_CLIENT_SECRET
  --csc-ca-file <f>           $SIGNBRIDGE_CSC_CA_FILE: CA of the server certificate
  --csc-pin-file <f>          file (mode 0600) holding the credentials' PIN, else $SIGNBRIDGE_CSC_PIN
                              (only for credentials that need a PIN besides the OTP, or PIN-only ones)
  --csc-unauthorized <p>      a signature no authorisation covers: refuse (default:
                              CKR_USER_NOT_LOGGED_IN and a log line saying how to authorise) or pin
                              (PIN-only credentials: the daemon authorises with the PIN)
  --csc-num-signatures <n>    signatures asked for per authorisation, at most the credential's
                              multisign (default 16)
  --csc-coalesce-ms <n>       a lone signature waits this long for others to share its signHash
                              (default 0: only signatures queued behind a call in flight share one)
  --token-label <label>       the token label tools see (default signbridge-csc)

Logs go to stderr (JSON lines). Stop with SIGTERM or Ctrl-C: in-flight signatures finish first.

Exit codes: 0 stopped cleanly; 1 unexpected failure; 2 usage/configuration error (flags, config,
PIN file, STM credential files); 3 the backend could not start (library, token, PIN; STM
unreachable, credentials refused); 4 the socket is in use by another daemon or its directory is unsafe.
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
      'stm-host': { type: 'string' },
      'stm-client-cert-file': { type: 'string' },
      'stm-client-key-file': { type: 'string' },
      'stm-ca-file': { type: 'string' },
      'stm-api-key-file': { type: 'string' },
      'stm-client-cert-password-file': { type: 'string' },
      'stm-key-filter': { type: 'string' },
      'stm-refresh-s': { type: 'string' },
      'csc-url': { type: 'string' },
      'csc-client-id': { type: 'string' },
      'csc-ca-file': { type: 'string' },
      'csc-client-secret-file': { type: 'string' },
      'csc-pin-file': { type: 'string' },
      'csc-unauthorized': { type: 'string' },
      'csc-num-signatures': { type: 'string' },
      'csc-coalesce-ms': { type: 'string' },
      'sign-timeout-ms': { type: 'string' },
      'verify-signatures': { type: 'string' },
      'client-secret-file': { type: 'string' },
      'allow-uid': { type: 'string' },
      'audit-log': { type: 'string' },
      'audit-max-bytes': { type: 'string' },
      'audit-keep': { type: 'string' },
      pin: { type: 'string' },
      'client-secret': { type: 'string' },
      'api-key': { type: 'string' },
      'stm-api-key': { type: 'string' },
      'stm-client-cert-password': { type: 'string' },
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
  for (const k of ['api-key', 'stm-api-key', 'stm-client-cert-password', 'client-secret'] as const) {
    if (values[k] !== undefined) {
      const how =
        k === 'stm-client-cert-password' ? 'SM_CLIENT_CERT_PASSWORD or --stm-client-cert-password-file'
        : k === 'client-secret' ? '--client-secret-file (mode 0600)'
        : 'SM_API_KEY or --stm-api-key-file';
      throw sbError('SIGNBRIDGE_ERR_USAGE', { detail: `--${k} is not accepted (argv is visible to other users): use ${how}`, command: 'daemon' });
    }
  }
  const { help: _h, pin: _p, 'api-key': _a, 'stm-api-key': _s, 'stm-client-cert-password': _c, 'client-secret': _cs, ...flags } = values;
  const cfg = resolveConfig(flags);
  const logger = createLogger(cfg.logLevel as LogLevel);
  // The uid check (README "Security model") needs the addon: without it the daemon does not start
  // (fail closed) — loadAddon's error lists the paths tried and the build command.
  // On Windows the addon also owns the named pipe and reads each client's SID (docs/windows.md).
  const addon = loadAddon();
  return runDaemon(cfg, {
    logger,
    peerCredentials: addon.peerCredentials,
    requirePeerCredentials: true,
    pipe: addon.pipe,
    verifyDigest: addon.verifyDigest,
    // SIGNBRIDGE_NATIVE_SIGN=0: every signature through the JavaScript path (the bench compares both)
    nativeSigner: process.env.SIGNBRIDGE_NATIVE_SIGN === '0' ? undefined : addon.NativeSigner,
  });
}
