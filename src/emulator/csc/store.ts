// credentials.json: the CSC emulator's metadata (credentials, their certificates, the OAuth
// client id). Keys live in the SoftHSMv2 token; this file holds public data and PIN digests only
// and is rewritten atomically after every change (../store.ts writeJsonAtomic).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EmulatorError } from '../errors.js';
import { writeJsonAtomic } from '../store.js';

export const CSC_STATE_FILE = 'credentials.json';

/** DigiCert Document Trust Manager's credential states; only ACTIVE signs. */
export const CREDENTIAL_STATUSES = ['ACTIVE', 'PENDING_ISSUANCE', 'DEACTIVATED', 'REVOKED', 'SUSPENDED'] as const;
export type CredentialStatus = (typeof CREDENTIAL_STATUSES)[number];

export interface CredentialRecord {
  /** credentialID */
  id: string;
  description: string;
  key_alg: 'RSA' | 'ECDSA';
  key_size?: number;
  curve?: 'P-256' | 'P-384';
  /** CKA_ID of the key in the token, hex */
  hsm_id: string;
  /** SubjectPublicKeyInfo DER, base64 */
  public_key: string;
  /** certificate DER, base64; absent while PENDING_ISSUANCE */
  cert?: string;
  status: CredentialStatus;
  /** the PIN as "salt:SHA-256(salt‖PIN)" hex (emulator test PINs; never the PIN itself); absent = no PIN */
  pin_digest?: string;
  pin_format?: 'N' | 'A';
  otp: boolean;
  scal: '1' | '2';
  multisign: number;
  /** consecutive wrong PINs; PIN_TRIES of them lock the PIN */
  pin_failures: number;
  created_on: string;
}

export interface CscStateFile {
  version: 1;
  client_id: string;
  created_on: string;
  credentials: CredentialRecord[];
}

export function loadCscState(dir: string): CscStateFile {
  const p = join(dir, CSC_STATE_FILE);
  let s: CscStateFile;
  try {
    s = JSON.parse(readFileSync(p, 'utf8')) as CscStateFile;
  } catch (e) {
    throw new EmulatorError('SIGNBRIDGE_ERR_EMULATOR_STATE', `cannot read ${p} (${(e as Error).message}): fix or remove the state directory`, { cause: e });
  }
  if (s.version !== 1 || !Array.isArray(s.credentials) || typeof s.client_id !== 'string') {
    throw new EmulatorError('SIGNBRIDGE_ERR_EMULATOR_STATE', `${p} is not a CSC emulator state file of version 1: remove the state directory to start afresh`);
  }
  return s;
}

export function saveCscState(dir: string, s: CscStateFile): void {
  writeJsonAtomic(join(dir, CSC_STATE_FILE), s);
}
