// Cloud Signature Consortium API v1 emulator (DigiCert Document Trust Manager's API): a real
// HTTPS server, OAuth 2.0 client credentials, keys in SoftHSMv2, certificates from the
// emulator's CA, OTPs delivered to <stateDir>/otp/<credentialID>. docs/csc-emulator.md.

import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { createLogger } from '../../daemon/logger.js';
import { EmulatorError } from '../errors.js';
import { FaultState, type Faults } from '../faults.js';
import { EmulatorHsm, type SeedKey } from '../hsm.js';
import { listenHttps, parseListen, stopOnce, writeEnvScript } from '../bootstrap.js';
import { openPki, writeSecret } from '../pki.js';
import { ADMIN_BASE } from '../server.js';
import { isFirstRun } from '../store.js';
import { OAuthServer } from './oauth.js';
import { createCscServer, type CscStats } from './server.js';
import { CscService, type NewCredential } from './service.js';
import { CSC_STATE_FILE, loadCscState, saveCscState, type CredentialStatus, type CscStateFile } from './store.js';

export { CSC_ERRORS, CscError, type CscErrorCode } from './errors.js';
export type { CscStats } from './server.js';
export { CSC_BASE, CSC_METHODS } from './server.js';

export interface CscEmulatorOptions {
  stateDir: string;
  /** "host:port"; default "127.0.0.1:0" (a free port) */
  listen?: string;
  faults?: Faults;
  /** seconds: access token (3600), refresh token (86400), SAD (3600), OTP (300) */
  tokenTtlS?: number;
  refreshTtlS?: number;
  sadTtlS?: number;
  otpTtlS?: number;
  logger?: Logger;
}

export interface RunningCscEmulator {
  /** https://127.0.0.1:<port> (SIGNBRIDGE_CSC_URL) */
  url: string;
  /** SIGNBRIDGE_CSC_URL, SIGNBRIDGE_CSC_CLIENT_ID, SIGNBRIDGE_CSC_CLIENT_SECRET, SIGNBRIDGE_CSC_CA_FILE */
  env: Record<string, string>;
  /** <stateDir>/env.sh (mode 0600: it holds the client secret) */
  envFile: string;
  /** https://127.0.0.1:<port>/__admin — loopback clients only */
  adminUrl: string;
  stateDir: string;
  credentials(): Array<{ id: string; status: CredentialStatus; key_alg: string }>;
  createCredential(c: NewCredential): Promise<void>;
  setStatus(id: string, status: CredentialStatus): Promise<void>;
  setFaults(f: Faults): void;
  stats(): CscStats;
  resetStats(): void;
  stop(): Promise<void>;
}

/** The seed credentials of the first run (the command-line contract). */
export const SEED_CREDENTIALS: ReadonlyArray<NewCredential & { key: SeedKey['spec'] & { type: 'rsa' | 'ec' } }> = [
  { id: 'doc-rsa', key: { type: 'rsa', bits: 3072 }, otp: true, description: 'Document signing, RSA 3072, OTP per authorisation' },
  { id: 'doc-ec', key: { type: 'ec', curve: 'P-256' }, otp: true, description: 'Document signing, ECDSA P-256, OTP per authorisation' },
];

export const CSC_ENV_ORDER = ['SIGNBRIDGE_CSC_URL', 'SIGNBRIDGE_CSC_CLIENT_ID', 'SIGNBRIDGE_CSC_CLIENT_SECRET', 'SIGNBRIDGE_CSC_CA_FILE'] as const;
export const CSC_SECRET_ENV = new Set(['SIGNBRIDGE_CSC_CLIENT_SECRET']);
const CLIENT_SECRET_FILE = 'oauth-client-secret';

export async function startCscEmulator(o: CscEmulatorOptions): Promise<RunningCscEmulator> {
  const dir = resolve(o.stateDir);
  const { host, port } = parseListen(o.listen ?? '127.0.0.1:0');
  const faults = new FaultState(o.faults ?? {});
  const logger = o.logger ?? createLogger(process.env.SIGNBRIDGE_EMULATOR_LOG_LEVEL || 'warn');

  const create = isFirstRun(dir, CSC_STATE_FILE);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pki = await openPki(dir, host, create);
  const secretPath = join(dir, CLIENT_SECRET_FILE);
  if (create) writeSecret(secretPath, randomBytes(24).toString('base64url'));
  if (!existsSync(secretPath)) throw new EmulatorError('SIGNBRIDGE_ERR_EMULATOR_STATE', `${secretPath} is missing: remove ${dir} to start afresh`);
  chmodSync(secretPath, 0o600);
  const clientSecret = readFileSync(secretPath, 'utf8').trim();

  const seeds = create ? SEED_CREDENTIALS.map((s) => ({ label: s.id, idHex: randomBytes(16).toString('hex'), spec: s.key })) : [];
  const { hsm, seeded } = await EmulatorHsm.open(dir, seeds);
  let service: CscService;
  try {
    const state: CscStateFile = create
      ? { version: 1, client_id: `signbridge-csc-${randomBytes(6).toString('hex')}`, created_on: new Date().toISOString(), credentials: [] }
      : loadCscState(dir);
    service = new CscService(dir, state, hsm, pki, { sadTtlS: o.sadTtlS ?? 3600, otpTtlS: o.otpTtlS ?? 300 });
    for (const [i, s] of seeds.entries()) await service.addCredential(SEED_CREDENTIALS[i]!, { idHex: s.idHex, spki: seeded.get(s.idHex)! });
    if (create) saveCscState(dir, state);
  } catch (e) {
    await hsm.close();
    throw e;
  }
  const oauth = new OAuthServer(service.clientId, clientSecret, { tokenTtlS: o.tokenTtlS ?? 3600, refreshTtlS: o.refreshTtlS ?? 86400 });

  let url = '';
  const emu = createCscServer({ service, oauth, tls: { key: pki.serverKeyPem, cert: pki.serverCertPem }, faults, logger, baseUrl: () => url });
  const server = emu.server;
  url = await listenHttps(server, host, port, hsm);
  const env: Record<string, string> = {
    SIGNBRIDGE_CSC_URL: url,
    SIGNBRIDGE_CSC_CLIENT_ID: service.clientId,
    SIGNBRIDGE_CSC_CLIENT_SECRET: clientSecret,
    SIGNBRIDGE_CSC_CA_FILE: pki.paths.caCert,
  };
  const envFile = join(dir, 'env.sh');
  writeEnvScript(
    envFile,
    [
      '# signbridge CSC emulator: the variables a daemon needs to reach it (docs/csc-emulator.md).',
      `# Use: . ${envFile} && signbridge daemon --backend csc`,
      '# Rewritten at every emulator start (the port may change). Holds the client secret: keep it mode 0600.',
    ],
    CSC_ENV_ORDER,
    env,
  );
  logger.info({ url, stateDir: dir, first_run: create }, 'CSC emulator listening');

  return {
    url,
    env,
    envFile,
    adminUrl: `${url}${ADMIN_BASE}`,
    stateDir: dir,
    credentials: () => service.credentials().map((c) => ({ id: c.id, status: c.status, key_alg: c.key_alg })),
    createCredential: async (c) => {
      await service.addCredential(c);
    },
    setStatus: async (id, status) => {
      await service.setStatus(id, status);
    },
    setFaults: (f) => faults.set(f),
    stats: () => emu.stats(),
    resetStats: () => emu.resetStats(),
    stop: stopOnce(server, hsm, logger, 'CSC emulator stopped'),
  };
}
