// keypairs.json: the emulator's metadata (keypairs, their certificates, the account id). The
// keys themselves live in the SoftHSMv2 token; this file holds only public data and is rewritten
// atomically (temp file + rename) after every change.

import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EmulatorError } from './errors.js';

export type KeyAlg = 'RSA' | 'ECDSA' | 'EdDSA';

export interface KeypairRecord {
  id: string;
  alias: string;
  key_alg: KeyAlg;
  key_size?: number;
  curve?: string;
  key_storage: 'HSM' | 'DISK';
  key_type: 'PRODUCTION' | 'TEST';
  /** availability given at creation (seed: ONLINE | OFFLINE) */
  status: 'ONLINE' | 'OFFLINE';
  /** ACTIVE, or SUSPENDED (signing refused: 403 KEYPAIR_SUSPENDED) */
  key_status: 'ACTIVE' | 'SUSPENDED';
  /** CKA_ID of the key in the token, hex */
  hsm_id: string;
  /** SubjectPublicKeyInfo DER, base64 */
  public_key: string;
  created_on: string;
  modified_on: string;
  /** emulated release window: false → 403 RELEASE_WINDOW_CLOSED */
  release_window_open: boolean;
  /** emulated signature limit: null = unlimited; 0 → 403 SIGNATURE_LIMIT_EXCEEDED */
  signatures_remaining: number | null;
}

export interface CertificateRecord {
  id: string;
  keypair_id: string;
  /** DER, base64 */
  cert: string;
  certificate_status: 'ACTIVE' | 'REVOKED';
  default_cert: boolean;
  created_on: string;
}

export interface StateFile {
  version: 1;
  account: string;
  created_on: string;
  keypairs: KeypairRecord[];
  certificates: CertificateRecord[];
}

export const STATE_FILE = 'keypairs.json';

export function statePath(dir: string): string {
  return join(dir, STATE_FILE);
}

export function loadState(dir: string): StateFile {
  const p = statePath(dir);
  let s: StateFile;
  try {
    s = JSON.parse(readFileSync(p, 'utf8')) as StateFile;
  } catch (e) {
    throw new EmulatorError('SIGNBRIDGE_ERR_EMULATOR_STATE', `cannot read ${p} (${(e as Error).message}): fix or remove the state directory`, { cause: e });
  }
  if (s.version !== 1 || !Array.isArray(s.keypairs) || !Array.isArray(s.certificates) || typeof s.account !== 'string') {
    throw new EmulatorError('SIGNBRIDGE_ERR_EMULATOR_STATE', `${p} is not an emulator state file of version 1: remove the state directory to start afresh`);
  }
  return s;
}

export function saveState(dir: string, s: StateFile): void {
  writeJsonAtomic(statePath(dir), s);
}

/** Public metadata (mode 0644), written to a temp name and renamed so a crash never leaves half a file. */
export function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n', { mode: 0o644 });
  renameSync(tmp, path);
}

/**
 * The first run makes everything; an interrupted first run leaves a directory we must not
 * half-reuse. `stateFile` is the file a completed first run leaves (keypairs.json, credentials.json).
 */
export function isFirstRun(dir: string, stateFile: string): boolean {
  if (existsSync(join(dir, stateFile))) return false;
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new EmulatorError(
      'SIGNBRIDGE_ERR_EMULATOR_STATE',
      `${dir} is not empty but holds no ${stateFile} (an interrupted first run, or another emulator's directory): remove it, or give an empty/new --state-dir`,
    );
  }
  return true;
}

export function stateExists(dir: string): boolean {
  return existsSync(statePath(dir));
}
