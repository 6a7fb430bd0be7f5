// The csc backend's settings (docs/csc-backend.md "Configuration"): where the service is, who the
// daemon is to it, and what happens to a signature no authorisation covers. Secrets (the OAuth
// client secret, the credentials' PIN) are only named here as files; startDaemon reads them, from
// the environment first (SIGNBRIDGE_CSC_CLIENT_SECRET, SIGNBRIDGE_CSC_PIN).
import { resolve } from 'node:path';
import { sbError } from '../core/errors.js';

export const CSC_POLICIES = ['refuse', 'pin'] as const;

export interface CscConfig {
  url: string;
  clientId: string;
  caFile?: string | undefined;
  clientSecretFile?: string | undefined;
  pinFile?: string | undefined;
  tokenLabel: string;
  policy: (typeof CSC_POLICIES)[number];
  numSignatures: number;
  coalesceMs: number;
  signTimeoutMs: number;
  verifySignatures: boolean;
}

export interface CscRawOptions {
  'csc-url'?: string | undefined;
  'csc-client-id'?: string | undefined;
  'csc-ca-file'?: string | undefined;
  'csc-client-secret-file'?: string | undefined;
  'csc-pin-file'?: string | undefined;
  'csc-unauthorized'?: string | undefined;
  'csc-num-signatures'?: string | number | undefined;
  'csc-coalesce-ms'?: string | number | undefined;
}

export const CSC_CONFIG_KEYS: ReadonlyArray<keyof CscRawOptions> = [
  'csc-url', 'csc-client-id', 'csc-ca-file', 'csc-client-secret-file', 'csc-pin-file', 'csc-unauthorized', 'csc-num-signatures', 'csc-coalesce-ms',
];
export const CSC_PATH_KEYS = ['csc-ca-file', 'csc-client-secret-file', 'csc-pin-file'] as const;

/** The SIGNBRIDGE_CSC_* variables the emulator's env.sh exports, as option keys. */
export function cscEnvOptions(env: NodeJS.ProcessEnv): CscRawOptions {
  return {
    ...(env.SIGNBRIDGE_CSC_URL ? { 'csc-url': env.SIGNBRIDGE_CSC_URL } : {}),
    ...(env.SIGNBRIDGE_CSC_CLIENT_ID ? { 'csc-client-id': env.SIGNBRIDGE_CSC_CLIENT_ID } : {}),
    ...(env.SIGNBRIDGE_CSC_CA_FILE ? { 'csc-ca-file': env.SIGNBRIDGE_CSC_CA_FILE } : {}),
  };
}

const bad = (detail: string): Error => sbError('SIGNBRIDGE_ERR_CONFIG', { detail });

function intOf(k: string, v: string | number | undefined, min: number, max: number): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw bad(`--${k} must be an integer from ${min} to ${max}, got ${String(v)}`);
  return n;
}

export function cscConfig(o: CscRawOptions & { 'token-label'?: string | undefined }, common: { signTimeoutMs: number; verifySignatures: boolean }): CscConfig {
  const url = o['csc-url'];
  if (!url) throw bad('--csc-url <url> (or SIGNBRIDGE_CSC_URL) is required for the csc backend: the service\'s base URL, endpoints under /csc/v1/');
  const clientId = o['csc-client-id'];
  if (!clientId) throw bad('--csc-client-id <id> (or SIGNBRIDGE_CSC_CLIENT_ID) is required for the csc backend: the OAuth client the service issued');
  const policy = (o['csc-unauthorized'] ?? 'refuse') as CscConfig['policy'];
  if (!CSC_POLICIES.includes(policy)) throw bad(`--csc-unauthorized must be one of ${CSC_POLICIES.join(', ')}`);
  const tokenLabel = o['token-label'] ?? 'signbridge-csc';
  if (Buffer.byteLength(tokenLabel) > 32 || tokenLabel === '') throw bad(`--token-label must be 1 to 32 bytes, got "${tokenLabel}"`);
  const pathOf = (v: string | undefined): string | undefined => (v ? resolve(v) : undefined);
  return {
    url,
    clientId,
    caFile: pathOf(o['csc-ca-file']),
    clientSecretFile: pathOf(o['csc-client-secret-file']),
    pinFile: pathOf(o['csc-pin-file']),
    tokenLabel,
    policy,
    numSignatures: intOf('csc-num-signatures', o['csc-num-signatures'], 1, 1000) ?? 16,
    coalesceMs: intOf('csc-coalesce-ms', o['csc-coalesce-ms'], 0, 1000) ?? 0,
    ...common,
  };
}
