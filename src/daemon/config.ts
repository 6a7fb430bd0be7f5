// Daemon configuration: a JSON file (--config), environment, flags — flags win, then the
// environment, then the file, then defaults. Every flag has the same key in the file. Secrets are
// never a flag or a config key (so they stay out of argv/ps and out of config files that get
// copied around): the PIN comes from SIGNBRIDGE_PIN or a PIN file, the STM API key from
// SM_API_KEY or "stm-api-key-file", the client certificate password from SM_CLIENT_CERT_PASSWORD
// or "stm-client-cert-password-file", the client secret from "client-secret-file"; they are read
// by startDaemon, never kept in DaemonConfig.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { sbError } from '../core/errors.js';
import { defaultSocketPath, stateDir } from '../core/paths.js';
import { isPipePath } from './pipe-server.js';
import { DEFAULT_AUDIT_KEEP, DEFAULT_AUDIT_MAX_BYTES } from './audit.js';
import { CSC_CONFIG_KEYS, CSC_PATH_KEYS, cscConfig, cscEnvOptions, type CscConfig, type CscRawOptions } from './csc-config.js';
import { parseUidList } from './peer-policy.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const BACKENDS = ['pkcs11', 'stm', 'csc'] as const;
export type BackendName = (typeof BACKENDS)[number];

/** The stm backend's settings (docs/stm-backend.md "Configuration"); no secrets, only where they are. */
export interface StmConfig {
  host: string;
  clientCertFile?: string | undefined;
  clientKeyFile?: string | undefined;
  caFile?: string | undefined;
  /** Files holding the secrets, when not given by SM_API_KEY / SM_CLIENT_CERT_PASSWORD. */
  apiKeyFile?: string | undefined;
  clientCertPasswordFile?: string | undefined;
  tlsSkipVerify: boolean;
  tokenLabel: string;
  keyFilter: string[];
  refreshS: number;
  signTimeoutMs: number;
  verifySignatures: boolean;
}

export interface DaemonConfig {
  backend: BackendName;
  socket: string;
  logLevel: LogLevel;
  /** protocol.md "LOGIN": file holding the client secret (mode 0600); absent → no login needed. */
  clientSecretFile?: string | undefined;
  /** README "Security model": uids besides the daemon's own that may connect (--allow-uid). */
  allowUids: number[];
  /** README "Audit log": a synced request record and an outcome line per SIGN, rotated by size. */
  audit: { file: string; maxBytes: number; keep: number };
  /** Set when backend is "stm". */
  stm?: StmConfig | undefined;
  /** Set when backend is "csc" (csc-config.ts). */
  csc?: CscConfig | undefined;
  /** Set when backend is "pkcs11". */
  pkcs11: {
    library: string;
    tokenLabel?: string | undefined;
    slotIndex?: number | undefined;
    pinFile?: string | undefined;
    /** Keys faster than this (EWMA, µs) sign on the event loop; see backends/pkcs11. */
    syncThresholdUs?: number | undefined;
    maxAsyncSessions?: number | undefined;
  };
}

/** Flag/config-file keys (kebab-case, the same in both). */
export interface RawOptions extends CscRawOptions {
  backend?: string | undefined;
  socket?: string | undefined;
  'log-level'?: string | undefined;
  'pkcs11-library'?: string | undefined;
  'token-label'?: string | undefined;
  'slot-index'?: string | number | undefined;
  'pin-file'?: string | undefined;
  'sync-threshold-us'?: string | number | undefined;
  'max-async-sessions'?: string | number | undefined;
  'stm-host'?: string | undefined;
  'stm-client-cert-file'?: string | undefined;
  'stm-client-key-file'?: string | undefined;
  'stm-ca-file'?: string | undefined;
  'stm-api-key-file'?: string | undefined;
  'stm-client-cert-password-file'?: string | undefined;
  'stm-key-filter'?: string | undefined;
  'stm-refresh-s'?: string | number | undefined;
  'sign-timeout-ms'?: string | number | undefined;
  'verify-signatures'?: string | boolean | undefined;
  'client-secret-file'?: string | undefined;
  'allow-uid'?: string | number | undefined;
  'audit-log'?: string | undefined;
  'audit-max-bytes'?: string | number | undefined;
  'audit-keep'?: string | number | undefined;
}

export const CONFIG_KEYS: ReadonlyArray<keyof RawOptions> = [
  'backend', 'socket', 'log-level', 'pkcs11-library', 'token-label', 'slot-index', 'pin-file', 'sync-threshold-us', 'max-async-sessions',
  'stm-host', 'stm-client-cert-file', 'stm-client-key-file', 'stm-ca-file', 'stm-api-key-file', 'stm-client-cert-password-file',
  'stm-key-filter', 'stm-refresh-s', 'sign-timeout-ms', 'verify-signatures',
  'client-secret-file', 'allow-uid', 'audit-log', 'audit-max-bytes', 'audit-keep', ...CSC_CONFIG_KEYS,
];
const SECRET_KEYS = [
  'pin', 'user-pin', 'password', 'api-key', 'apiKey', 'stm-api-key', 'sm-api-key', 'SM_API_KEY', 'client-cert-password',
  'stm-client-cert-password', 'SM_CLIENT_CERT_PASSWORD', 'client-secret', 'secret', 'csc-client-secret', 'csc-pin', 'otp',
];
const PATH_KEYS = [
  'socket', 'pkcs11-library', 'pin-file', 'stm-client-cert-file', 'stm-client-key-file', 'stm-ca-file', 'stm-api-key-file', 'stm-client-cert-password-file',
  'client-secret-file', 'audit-log', ...CSC_PATH_KEYS,
] as const;

function bad(detail: string): Error {
  return sbError('SIGNBRIDGE_ERR_CONFIG', { detail });
}

export function readConfigFile(file: string): RawOptions {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw bad(`cannot read --config ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw bad(`--config ${file} is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw bad(`--config ${file} must hold a JSON object`);
  const out: RawOptions = {};
  for (const [k, v] of Object.entries(json)) {
    if (SECRET_KEYS.includes(k)) {
      throw bad(
        `"${k}" in ${file}: secrets are never read from the config (PIN: SIGNBRIDGE_PIN or "pin-file"; STM API key: SM_API_KEY or "stm-api-key-file"; ` +
          'client certificate password: SM_CLIENT_CERT_PASSWORD or "stm-client-cert-password-file"; client secret: "client-secret-file")',
      );
    }
    if (!(CONFIG_KEYS as readonly string[]).includes(k)) throw bad(`unknown key "${k}" in ${file} (known: ${CONFIG_KEYS.join(', ')})`);
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw bad(`"${k}" in ${file} must be a string, number or boolean`);
    (out as Record<string, unknown>)[k] = v;
  }
  // Relative paths in the file are relative to the file, not to the daemon's working directory.
  const base = resolve(file, '..');
  for (const k of PATH_KEYS) {
    const v = out[k];
    if (typeof v === 'string' && v !== '' && !v.startsWith('/')) out[k] = resolve(base, v);
  }
  return out;
}

function intOf(k: string, v: string | number | undefined, min: number): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isInteger(n) || n < min) throw bad(`--${k} must be an integer >= ${min}, got ${String(v)}`);
  return n;
}

function allowUidsOf(v: string | number | undefined): number[] {
  if (v === undefined || v === '') return [];
  try {
    return parseUidList(v);
  } catch (e) {
    throw bad((e as Error).message);
  }
}

function boolOf(k: string, v: string | boolean | undefined, dflt: boolean): boolean {
  if (v === undefined || v === '') return dflt;
  if (typeof v === 'boolean') return v;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw bad(`--${k} must be true or false, got ${v}`);
}

/** SM_TLS_SKIP_VERIFY as DigiCert's tools read it: "true"/"1"/"yes" switch it on; anything else is off. */
export function tlsSkipVerifyFromEnv(env: NodeJS.ProcessEnv): boolean {
  return /^(1|true|yes|on)$/i.test(env.SM_TLS_SKIP_VERIFY ?? '');
}

export function resolveConfig(flags: RawOptions & { config?: string | undefined }, env: NodeJS.ProcessEnv = process.env): DaemonConfig {
  const { config, ...flagOpts } = flags;
  const file: RawOptions = config ? readConfigFile(config) : {};
  // DigiCert's own client tools read SM_*; users switching keep them set (docs/stm-backend.md).
  const envOpts: RawOptions = {
    ...(env.SIGNBRIDGE_SOCKET ? { socket: env.SIGNBRIDGE_SOCKET } : {}),
    ...(env.SIGNBRIDGE_LOG_LEVEL ? { 'log-level': env.SIGNBRIDGE_LOG_LEVEL } : {}),
    ...(env.SM_HOST ? { 'stm-host': env.SM_HOST } : {}),
    ...(env.SM_CLIENT_CERT_FILE ? { 'stm-client-cert-file': env.SM_CLIENT_CERT_FILE } : {}),
    ...(env.SM_CLIENT_KEY_FILE ? { 'stm-client-key-file': env.SM_CLIENT_KEY_FILE } : {}),
    ...(env.SIGNBRIDGE_STM_CA_FILE || env.SM_CA_FILE ? { 'stm-ca-file': env.SIGNBRIDGE_STM_CA_FILE || env.SM_CA_FILE } : {}),
    ...cscEnvOptions(env),
  };
  const defined = (o: RawOptions): RawOptions => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as RawOptions;
  const o: RawOptions = { ...defined(file), ...defined(envOpts), ...defined(flagOpts) };

  const backend = (o.backend ?? 'pkcs11') as BackendName;
  if (!BACKENDS.includes(backend)) throw bad(`unknown --backend "${String(backend)}" (available: ${BACKENDS.join(', ')})`);
  const logLevel = (o['log-level'] ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) throw bad(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  const rawSocket = o.socket ?? defaultSocketPath({ ...env, SIGNBRIDGE_SOCKET: undefined });
  const socket = isPipePath(rawSocket) ? rawSocket : resolve(rawSocket);
  const common = {
    backend,
    socket,
    logLevel,
    clientSecretFile: o['client-secret-file'] ? resolve(o['client-secret-file']) : undefined,
    allowUids: allowUidsOf(o['allow-uid']),
    // Default: beside the socket, in the daemon's private 0700 directory, so two daemons never
    // share one; that directory is often a tmpfs, so a lasting trail needs --audit-log (README).
    audit: {
      // a pipe has no directory: on Windows the default is %LOCALAPPDATA%\signbridge\audit.log
      file: resolve(o['audit-log'] ?? join(isPipePath(socket) ? stateDir(env) : dirname(socket), 'audit.log')),
      maxBytes: intOf('audit-max-bytes', o['audit-max-bytes'], 1) ?? DEFAULT_AUDIT_MAX_BYTES,
      keep: intOf('audit-keep', o['audit-keep'], 0) ?? DEFAULT_AUDIT_KEEP,
    },
  };
  if (backend === 'stm') return { ...common, stm: stmConfig(o, env), pkcs11: { library: '' } };
  if (backend === 'csc') {
    const signing = { signTimeoutMs: intOf('sign-timeout-ms', o['sign-timeout-ms'], 1) ?? 30_000, verifySignatures: boolOf('verify-signatures', o['verify-signatures'], true) };
    return { ...common, csc: cscConfig(o, signing), pkcs11: { library: '' } };
  }
  const library = o['pkcs11-library'];
  if (!library) throw bad('--pkcs11-library <path> is required for the pkcs11 backend (SoftHSMv2: /usr/lib/softhsm/libsofthsm2.so)');
  const tokenLabel = o['token-label'];
  const slotIndex = intOf('slot-index', o['slot-index'], 0);
  if (tokenLabel !== undefined && slotIndex !== undefined) throw bad('give --token-label or --slot-index, not both');
  return {
    ...common,
    pkcs11: {
      library: resolve(library),
      tokenLabel,
      slotIndex,
      pinFile: o['pin-file'] ? resolve(o['pin-file']) : undefined,
      syncThresholdUs: intOf('sync-threshold-us', o['sync-threshold-us'], 0),
      maxAsyncSessions: intOf('max-async-sessions', o['max-async-sessions'], 1),
    },
  };
}

function stmConfig(o: RawOptions, env: NodeJS.ProcessEnv): StmConfig {
  const host = o['stm-host'];
  if (!host) throw bad('--stm-host <url> (or SM_HOST) is required for the stm backend, e.g. https://clientauth.one.digicert.com');
  const pathOf = (v: string | undefined): string | undefined => (v ? resolve(v) : undefined);
  const timeout = intOf('sign-timeout-ms', o['sign-timeout-ms'], 1) ?? 30_000;
  const tokenLabel = o['token-label'] ?? 'signbridge-stm';
  // CK_TOKEN_INFO.label holds 32 bytes; a longer one would be cut and pkcs11: URIs would not match.
  if (Buffer.byteLength(tokenLabel) > 32 || tokenLabel === '') throw bad(`--token-label must be 1 to 32 bytes, got "${tokenLabel}"`);
  return {
    host,
    clientCertFile: pathOf(o['stm-client-cert-file']),
    clientKeyFile: pathOf(o['stm-client-key-file']),
    caFile: pathOf(o['stm-ca-file']),
    apiKeyFile: pathOf(o['stm-api-key-file']),
    clientCertPasswordFile: pathOf(o['stm-client-cert-password-file']),
    tlsSkipVerify: tlsSkipVerifyFromEnv(env),
    tokenLabel,
    keyFilter: (o['stm-key-filter'] ?? '').split(',').map((x) => x.trim()).filter((x) => x !== ''),
    refreshS: intOf('stm-refresh-s', o['stm-refresh-s'], 0) ?? 300,
    signTimeoutMs: timeout,
    verifySignatures: boolOf('verify-signatures', o['verify-signatures'], true),
  };
}
