// Daemon configuration: a JSON file (--config), environment, flags — flags win, then the
// environment, then the file, then defaults. Every flag has the same key in the file. The PIN is
// never a flag or a config key: SIGNBRIDGE_PIN or a PIN file only (so it stays out of argv/ps).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { sbError } from '../core/errors.js';
import { defaultSocketPath } from '../core/paths.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface DaemonConfig {
  backend: 'pkcs11';
  socket: string;
  logLevel: LogLevel;
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
export interface RawOptions {
  backend?: string | undefined;
  socket?: string | undefined;
  'log-level'?: string | undefined;
  'pkcs11-library'?: string | undefined;
  'token-label'?: string | undefined;
  'slot-index'?: string | number | undefined;
  'pin-file'?: string | undefined;
  'sync-threshold-us'?: string | number | undefined;
  'max-async-sessions'?: string | number | undefined;
}

export const CONFIG_KEYS: ReadonlyArray<keyof RawOptions> = [
  'backend', 'socket', 'log-level', 'pkcs11-library', 'token-label', 'slot-index', 'pin-file', 'sync-threshold-us', 'max-async-sessions',
];
const SECRET_KEYS = ['pin', 'user-pin', 'password', 'api-key', 'apiKey'];

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
    if (SECRET_KEYS.includes(k)) throw bad(`"${k}" in ${file}: the PIN is read from SIGNBRIDGE_PIN or "pin-file", never from the config`);
    if (!(CONFIG_KEYS as readonly string[]).includes(k)) throw bad(`unknown key "${k}" in ${file} (known: ${CONFIG_KEYS.join(', ')})`);
    if (typeof v !== 'string' && typeof v !== 'number') throw bad(`"${k}" in ${file} must be a string or number`);
    (out as Record<string, unknown>)[k] = v;
  }
  // Relative paths in the file are relative to the file, not to the daemon's working directory.
  const base = resolve(file, '..');
  for (const k of ['socket', 'pkcs11-library', 'pin-file'] as const) {
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

export function resolveConfig(flags: RawOptions & { config?: string | undefined }, env: NodeJS.ProcessEnv = process.env): DaemonConfig {
  const { config, ...flagOpts } = flags;
  const file: RawOptions = config ? readConfigFile(config) : {};
  const envOpts: RawOptions = {
    ...(env.SIGNBRIDGE_SOCKET ? { socket: env.SIGNBRIDGE_SOCKET } : {}),
    ...(env.SIGNBRIDGE_LOG_LEVEL ? { 'log-level': env.SIGNBRIDGE_LOG_LEVEL } : {}),
  };
  const defined = (o: RawOptions): RawOptions => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as RawOptions;
  const o: RawOptions = { ...defined(file), ...defined(envOpts), ...defined(flagOpts) };

  const backend = o.backend ?? 'pkcs11';
  if (backend !== 'pkcs11') throw bad(`unknown --backend "${backend}" (available: pkcs11)`);
  const logLevel = (o['log-level'] ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) throw bad(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  const library = o['pkcs11-library'];
  if (!library) throw bad('--pkcs11-library <path> is required for the pkcs11 backend (SoftHSMv2: /usr/lib/softhsm/libsofthsm2.so)');
  const tokenLabel = o['token-label'];
  const slotIndex = intOf('slot-index', o['slot-index'], 0);
  if (tokenLabel !== undefined && slotIndex !== undefined) throw bad('give --token-label or --slot-index, not both');
  return {
    backend,
    socket: resolve(o.socket ?? defaultSocketPath({ ...env, SIGNBRIDGE_SOCKET: undefined })),
    logLevel,
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
