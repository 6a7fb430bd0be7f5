// Daemon wiring: backend → dispatcher → socket server, clean shutdown on SIGTERM/SIGINT.
//
// Exit codes (also in `signbridge daemon --help`):
//   0  stopped cleanly (SIGTERM / SIGINT)
//   1  unexpected failure
//   2  usage or configuration error (flags, config file, PIN file)
//   3  the backend could not start (library, token, PIN; STM unreachable or credentials refused)
//   4  the socket is in use by another daemon, or its directory is unsafe
import type { Logger } from 'pino';
import { sbError, SignbridgeError, type ErrorCode } from '../core/errors.js';
import { StmError } from '../backends/stm/errors.js';
import type { StmBackend } from '../backends/stm/index.js';
import type { NativeVerifyDigest } from '../backends/stm/verify.js';
import { CscError } from '../backends/csc/errors.js';
import type { CscBackend } from '../backends/csc/index.js';
import type { CscConfig } from './csc-config.js';
import type { Backend } from '../backends/types.js';
import type { NativeSignerCtor } from '../native/loader.js';
import { AuditLog } from './audit.js';
import { nativeFragments } from './audit-record.js';
import { ClientSecret, type LoginGate } from './client-auth.js';
import type { DaemonConfig, StmConfig } from './config.js';
import { Dispatcher } from './dispatcher.js';
import { NativeConnection } from './native-connection.js';
import { checkSecretFiles, readClientSecretFile } from './secrets.js';
import type { PipeApi } from './pipe-server.js';
import { DaemonServer } from './server.js';

import { EXIT, VERSION } from '../core/exit-codes.js';
export { EXIT, VERSION };

const EXIT_BY_CODE: Partial<Record<ErrorCode, number>> = {
  SIGNBRIDGE_ERR_CONFIG: EXIT.CONFIG,
  SIGNBRIDGE_ERR_USAGE: EXIT.CONFIG,
  SIGNBRIDGE_ERR_PIN_MISSING: EXIT.CONFIG,
  SIGNBRIDGE_ERR_PIN_FILE: EXIT.CONFIG,
  SIGNBRIDGE_ERR_PIN_INCORRECT: EXIT.BACKEND,
  SIGNBRIDGE_ERR_PKCS11_LIBRARY: EXIT.BACKEND,
  SIGNBRIDGE_ERR_TOKEN_NOT_FOUND: EXIT.BACKEND,
  SIGNBRIDGE_ERR_TOKEN: EXIT.BACKEND,
  SIGNBRIDGE_ERR_DAEMON_RUNNING: EXIT.SOCKET,
  SIGNBRIDGE_ERR_SOCKET_DIR: EXIT.SOCKET,
};
export function exitCodeFor(e: unknown): number {
  // STM: a configuration mistake is exit 2; anything the service or the network did at start is 3.
  if (e instanceof StmError) return e.stmCode === 'SIGNBRIDGE_ERR_STM_CONFIG' ? EXIT.CONFIG : EXIT.BACKEND;
  if (e instanceof CscError) return e.cscCode === 'SIGNBRIDGE_ERR_CSC_CONFIG' ? EXIT.CONFIG : EXIT.BACKEND;
  return e instanceof SignbridgeError ? (EXIT_BY_CODE[e.code] ?? EXIT.FAILURE) : EXIT.FAILURE;
}

/** What the daemon sends as User-Agent (STM records it as the signature's client_type). */
export const USER_AGENT = `signbridge/${VERSION} (${process.platform}; ${process.arch})`;

// Only the chosen backend's code is loaded (docs/performance.md "Start-up"): the stm and csc
// backends bring undici and node:tls, ~150 ms of a pkcs11 daemon's start-up that it never uses.
export async function createStmBackend(cfg: StmConfig, log: Logger, env: NodeJS.ProcessEnv, verifyDigest?: NativeVerifyDigest): Promise<StmBackend> {
  const [{ StmBackend }, { readSecretFile }] = await Promise.all([import('../backends/stm/index.js'), import('../backends/stm/credentials.js')]);
  /** A secret from the environment, else from its file (docs/stm-backend.md "Credentials"). */
  const secret = (env: NodeJS.ProcessEnv, name: string, file: string | undefined, what: string): string | undefined => {
    const v = env[name];
    if (v !== undefined && v !== '') return v;
    return file ? readSecretFile(file, what) : undefined;
  };
  return new StmBackend({
    host: cfg.host,
    apiKey: secret(env, 'SM_API_KEY', cfg.apiKeyFile, 'STM API key'),
    credentials: {
      clientCertFile: cfg.clientCertFile,
      clientKeyFile: cfg.clientKeyFile,
      clientCertPassword: secret(env, 'SM_CLIENT_CERT_PASSWORD', cfg.clientCertPasswordFile, 'client certificate password'),
      caFile: cfg.caFile,
    },
    tlsSkipVerify: cfg.tlsSkipVerify,
    tokenLabel: cfg.tokenLabel,
    keyFilter: cfg.keyFilter,
    refreshS: cfg.refreshS,
    signTimeoutMs: cfg.signTimeoutMs,
    verifySignatures: cfg.verifySignatures,
    verifyDigest,
    userAgent: USER_AGENT,
    logger: log.child({ backend: 'stm' }),
  });
}

/** The csc backend; the OAuth client secret and the PIN come from the environment or 0600 files. */
export async function createCscBackend(cfg: CscConfig, log: Logger, env: NodeJS.ProcessEnv): Promise<CscBackend> {
  const [{ CscBackend }, { readCscSecretFile }] = await Promise.all([import('../backends/csc/index.js'), import('../backends/csc/credentials.js')]);
  const fromEnvOrFile = (name: string, file: string | undefined, what: string): string | undefined => {
    const v = env[name];
    if (v !== undefined && v !== '') return v;
    return file ? readCscSecretFile(file, what) : undefined;
  };
  return new CscBackend({
    url: cfg.url,
    clientId: cfg.clientId,
    clientSecret: fromEnvOrFile('SIGNBRIDGE_CSC_CLIENT_SECRET', cfg.clientSecretFile, 'CSC client secret') ?? '',
    caFile: cfg.caFile,
    tokenLabel: cfg.tokenLabel,
    pin: fromEnvOrFile('SIGNBRIDGE_CSC_PIN', cfg.pinFile, 'CSC credential PIN'),
    policy: cfg.policy,
    numSignatures: cfg.numSignatures,
    lingerMs: cfg.coalesceMs,
    signTimeoutMs: cfg.signTimeoutMs,
    verifySignatures: cfg.verifySignatures,
    userAgent: USER_AGENT,
    logger: log.child({ backend: 'csc' }),
  });
}

export interface RunningDaemon {
  socketPath: string;
  backend: Backend;
  server: DaemonServer;
  audit: AuditLog;
  /** Stop accepting, finish in-flight signatures, close the backend, remove the socket. */
  close(): Promise<void>;
}

export interface StartOptions {
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  peerCredentials?: ((fd: number) => { pid: number; uid: number; gid: number }) | undefined;
  /** Refuse connections whose peer credentials cannot be read (the CLI sets it: fail closed). */
  requirePeerCredentials?: boolean | undefined;
  /** The daemon's own uid for the peer check (default process.getuid()); cfg.allowUids are let in besides it. */
  ownUid?: number | undefined;
  /** Windows: the addon's named-pipe server (src/daemon/pipe-server.ts). */
  pipe?: PipeApi | undefined;
  /** The addon's OpenSSL digest check for the stm backend (absent: its JS fallback). */
  verifyDigest?: NativeVerifyDigest | undefined;
  /** The addon's native signing path for the pkcs11 backend's fast keys (absent: every signature in JS). */
  nativeSigner?: NativeSignerCtor | undefined;
}

async function createBackend(cfg: DaemonConfig, log: Logger, env: NodeJS.ProcessEnv, verifyDigest?: NativeVerifyDigest, nativeSigner?: NativeSignerCtor): Promise<Backend> {
  if (cfg.backend === 'stm') return createStmBackend(cfg.stm!, log, env, verifyDigest);
  if (cfg.backend === 'csc') return createCscBackend(cfg.csc!, log, env);
  // Loaded only for this backend: pkcs11js is a native addon, and an stm daemon runs where none
  // was built for it (Windows: docs/windows.md "The pkcs11 backend on Windows").
  const [{ Pkcs11Backend }, { readPin }] = await Promise.all([import('../backends/pkcs11/index.js'), import('../backends/pkcs11/pin.js')]);
  const pin = readPin({ pinFile: cfg.pkcs11.pinFile, env });
  return new Pkcs11Backend({
    library: cfg.pkcs11.library,
    tokenLabel: cfg.pkcs11.tokenLabel,
    slotIndex: cfg.pkcs11.slotIndex,
    pin,
    logger: log.child({ backend: 'pkcs11' }),
    syncThresholdUs: cfg.pkcs11.syncThresholdUs,
    maxAsyncSessions: cfg.pkcs11.maxAsyncSessions,
    nativeSigner,
  });
}

async function openAudit(cfg: DaemonConfig, log: Logger): Promise<AuditLog> {
  try {
    return await AuditLog.open({ ...cfg.audit, logger: log });
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw sbError('SIGNBRIDGE_ERR_CONFIG', { detail: `cannot open the audit log ${cfg.audit.file} (${why}): give a writable file with --audit-log <file>` });
  }
}

export async function startDaemon(cfg: DaemonConfig, opts: StartOptions): Promise<RunningDaemon> {
  const log = opts.logger;
  // Secrets and credential files are checked first: a configuration mistake is exit 2, at once.
  checkSecretFiles(cfg);
  const login: LoginGate | undefined = cfg.clientSecretFile ? new ClientSecret(readClientSecretFile(cfg.clientSecretFile)) : undefined;
  const backend = await createBackend(cfg, log, opts.env ?? process.env, opts.verifyDigest, opts.nativeSigner);
  // Refuse early (before logging in to the token / calling STM) when another daemon owns the socket.
  await DaemonServer.preparePath(cfg.socket, log);
  const audit = await openAudit(cfg, log);
  try {
    await backend.start();
  } catch (e) {
    await audit.close();
    throw e;
  }
  // The native signing path writes its request records itself (on a disk through a thread of its
  // own, and only while the daemon is idle); not when every signature is to be logged at debug
  // level (docs/performance.md "The native signing path").
  const native = backend.native && !log.isLevelEnabled('debug') && audit.attachNative(backend.native, nativeFragments()) ? backend.native : undefined;
  log.debug({ native: native !== undefined }, 'signing path');
  const dispatcher = new Dispatcher({ backend, serverName: `signbridge/${VERSION}`, login, audit, native });
  const server = new DaemonServer({
    socketPath: cfg.socket,
    logger: log,
    accept: dispatcher.accept,
    peerCredentials: opts.peerCredentials,
    requirePeerCredentials: opts.requirePeerCredentials,
    ownUid: opts.ownUid,
    allowUids: cfg.allowUids,
    pipe: opts.pipe,
    adopt: native ? (fd: number) => new NativeConnection(native, fd) : undefined,
  });
  try {
    await server.listen();
  } catch (e) {
    await backend.close();
    await audit.close();
    throw e;
  }
  const keys = backend.tokens().reduce((n, t) => n + t.keys.length, 0);
  log.info(
    {
      socket: cfg.socket, keys, backend: backend.name, audit: cfg.audit.file, clientSecret: login !== undefined, peerCheck: opts.peerCredentials !== undefined || opts.pipe !== undefined,
      ...(cfg.allowUids.length ? { allowUids: cfg.allowUids } : {}),
    },
    'listening',
  );
  let closing: Promise<void> | undefined;
  return {
    socketPath: cfg.socket,
    backend,
    server,
    audit,
    close: () =>
      (closing ??= (async () => {
        await server.close();
        await backend.close();
        await audit.close();
      })()),
  };
}

/** Run until SIGTERM/SIGINT; resolves with the exit code. */
export async function runDaemon(cfg: DaemonConfig, opts: StartOptions): Promise<number> {
  const d = await startDaemon(cfg, opts);
  return new Promise<number>((resolve) => {
    const stop = (signal: string): void => {
      opts.logger.info({ signal }, 'shutting down');
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      process.off('SIGHUP', onHup);
      d.close().then(
        () => {
          opts.logger.info('stopped');
          resolve(EXIT.OK);
        },
        (e: unknown) => {
          opts.logger.error({ err: (e as Error).message }, 'error during shutdown');
          resolve(EXIT.FAILURE);
        },
      );
    };
    const onTerm = (): void => stop('SIGTERM');
    const onInt = (): void => stop('SIGINT');
    // SIGHUP: re-list the keys now (stm backend; docs/stm-backend.md "Keys").
    const onHup = (): void => {
      const b = d.backend as Partial<StmBackend>;
      if (typeof b.refresh !== 'function') {
        opts.logger.info({ signal: 'SIGHUP' }, 'nothing to refresh for this backend');
        return;
      }
      opts.logger.info({ signal: 'SIGHUP' }, 'refreshing the key list');
      void b.refresh.call(d.backend, 'SIGHUP').catch(() => undefined);
    };
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
    process.on('SIGHUP', onHup);
  });
}
