// keypairs.json: the emulator's metadata (keypairs, their certificates, the account id). The
// keys themselves live in the SoftHSMv2 token; this file holds only public data and is rewritten
// atomically (temp file + rename) after every change.

import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
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
  const p = statePath(dir);
  const tmp = `${p}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(s, null, 2) + '\n', { mode: 0o644 });
  renameSync(tmp, p);
}

export function stateExists(dir: string): boolean {
  return existsSync(statePath(dir));
}
