// DigiCert Software Trust Manager emulator: a real HTTPS server (mTLS and/or API key) whose keys
// live in SoftHSMv2 and whose certificates chain to its own CA. For demos, tests and offline
// development of the "stm" backend. Behaviour: docs/emulator.md; contract: docs/stm-api.md.

import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { createLogger } from '../daemon/logger.js';
import { EmulatorError } from './errors.js';
import { FaultState, type Faults } from './faults.js';
import { EmulatorHsm, type SeedKey } from './hsm.js';
import { listenHttps, parseListen, stopOnce, writeEnvScript } from './bootstrap.js';
import { openPki } from './pki.js';
import { createEmulatorServer, ADMIN_BASE, type AuthMode, type Stats } from './server.js';
import { StmService } from './service.js';
import { isFirstRun, loadState, saveState, STATE_FILE, type StateFile } from './store.js';

export type { Faults } from './faults.js';
export type { AuthMode, Stats } from './server.js';
export { ApiError, API_ERRORS, EmulatorError, type ApiErrorCode } from './errors.js';
export { isLoopback, validateFaults } from './faults.js';
export { parseListen, shellQuote } from './bootstrap.js';

export interface EmulatorOptions {
  stateDir: string;
  /** "host:port" ("[::1]:port" for IPv6); default "127.0.0.1:0" (a free port) */
  listen?: string;
  faults?: Faults;
  /** which credentials authenticate API calls (default 'either') */
  auth?: AuthMode;
  /** default: pino at SIGNBRIDGE_EMULATOR_LOG_LEVEL or 'warn', on stderr, secrets redacted */
  logger?: Logger;
}

export interface CreatedKeypair {
  id: string;
  certificateId: string;
}

export interface RunningEmulator {
  /** https://127.0.0.1:<port> (SM_HOST) */
  url: string;
  /** SM_HOST, SM_API_KEY, SM_CLIENT_CERT_FILE (.p12), SM_CLIENT_CERT_PASSWORD, SIGNBRIDGE_STM_CLIENT_CERT_PEM,
   *  SIGNBRIDGE_STM_CLIENT_KEY_PEM, SIGNBRIDGE_STM_CA_FILE (all paths are files in the state dir) */
  env: Record<string, string>;
  /** <stateDir>/env.sh (mode 0600: it holds secrets) */
  envFile: string;
  /** https://127.0.0.1:<port>/__admin — loopback clients only, no credentials */
  adminUrl: string;
  stateDir: string;
  /** the account id every keypair belongs to */
  account: string;
  /** the seed and created keypairs: id, alias, key_alg */
  keypairs(): Array<{ id: string; alias: string; key_alg: string }>;
  /** replaces the fault configuration, like POST /__admin/faults ({} switches faults off) */
  setFaults(f: Faults): void;
  createKeypair(p: { alias: string; key_alg: 'RSA' | 'ECDSA' | 'EdDSA'; key_size?: number; curve?: string }): Promise<CreatedKeypair>;
  suspendKeypair(id: string): Promise<void>;
  /** closed → sign answers 403 RELEASE_WINDOW_CLOSED */
  setReleaseWindow(id: string, open: boolean): void;
  /** signatures still allowed (null = unlimited); 0 → sign answers 403 SIGNATURE_LIMIT_EXCEEDED */
  setSignatureLimit(id: string, remaining: number | null): void;
  /** like GET /__admin/stats */
  stats(): Stats;
  resetStats(): void;
  stop(): Promise<void>;
}

/** The seed keypairs made on the first run, so the demo works without set-up (docs/emulator.md). */
export const SEED_KEYPAIRS = [
  { alias: 'codesign-rsa', key_alg: 'RSA', key_size: 3072 },
  { alias: 'codesign-ec', key_alg: 'ECDSA', curve: 'P-256' },
] as const;

export const ENV_ORDER = [
  'SM_HOST',
  'SM_API_KEY',
  'SM_CLIENT_CERT_FILE',
  'SM_CLIENT_CERT_PASSWORD',
  'SIGNBRIDGE_STM_CLIENT_CERT_PEM',
  'SIGNBRIDGE_STM_CLIENT_KEY_PEM',
  'SIGNBRIDGE_STM_CA_FILE',
] as const;
/** env vars whose values are secrets: written to env.sh, never printed or logged */
export const SECRET_ENV = new Set(['SM_API_KEY', 'SM_CLIENT_CERT_PASSWORD']);

export async function startEmulator(o: EmulatorOptions): Promise<RunningEmulator> {
  const dir = resolve(o.stateDir);
  const { host, port } = parseListen(o.listen ?? '127.0.0.1:0');
  const auth: AuthMode = o.auth ?? 'either';
  if (!['mtls', 'api-key', 'either'].includes(auth)) throw new EmulatorError('SIGNBRIDGE_ERR_EMULATOR_CONFIG', `--auth must be mtls, api-key or either (not "${auth}")`);
  const faults = new FaultState(o.faults ?? {});
  const logger = o.logger ?? createLogger(process.env.SIGNBRIDGE_EMULATOR_LOG_LEVEL || 'warn');

  const create = isFirstRun(dir, STATE_FILE);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pki = await openPki(dir, host, create);
  const seeds: Array<SeedKey & { id: string }> = create
    ? SEED_KEYPAIRS.map((s) => ({
        id: randomUUID(),
        label: s.alias,
        idHex: randomBytes(16).toString('hex'),
        spec: s.key_alg === 'RSA' ? { type: 'rsa' as const, bits: s.key_size } : { type: 'ec' as const, curve: s.curve },
      }))
    : [];
  const { hsm, seeded } = await EmulatorHsm.open(dir, seeds);
  let service: StmService;
  try {
    const state: StateFile = create
      ? { version: 1, account: randomUUID(), created_on: new Date().toISOString(), keypairs: [], certificates: [] }
      : loadState(dir);
    service = new StmService(dir, state, hsm, pki);
    for (const [i, s] of seeds.entries()) {
      const def = SEED_KEYPAIRS[i]!;
      await service.addKeypair(
        { id: s.id, hsm_id: s.idHex, alias: def.alias, key_alg: def.key_alg, ...('key_size' in def ? { key_size: def.key_size } : { curve: def.curve }) },
        seeded.get(s.idHex)!,
      );
    }
    if (create) saveState(dir, state);
  } catch (e) {
    await hsm.close();
    throw e;
  }

  const emu = createEmulatorServer({
    service,
    tls: { key: pki.serverKeyPem, cert: pki.serverCertPem, ca: pki.caCertPem },
    apiKey: pki.apiKey,
    auth,
    faults,
    logger,
  });
  const server = emu.server;
  const url = await listenHttps(server, host, port, hsm);
  const env: Record<string, string> = {
    SM_HOST: url,
    SM_API_KEY: pki.apiKey,
    SM_CLIENT_CERT_FILE: pki.paths.clientP12,
    SM_CLIENT_CERT_PASSWORD: pki.clientP12Password,
    SIGNBRIDGE_STM_CLIENT_CERT_PEM: pki.paths.clientCert,
    SIGNBRIDGE_STM_CLIENT_KEY_PEM: pki.paths.clientKey,
    SIGNBRIDGE_STM_CA_FILE: pki.paths.caCert,
  };
  const envFile = join(dir, 'env.sh');
  writeEnvScript(
    envFile,
    [
      '# signbridge STM emulator: the variables a daemon needs to reach it (docs/emulator.md).',
      `# Use: . ${envFile} && signbridge daemon --backend stm`,
      '# Rewritten at every emulator start (the port may change). Holds secrets: keep it mode 0600.',
    ],
    ENV_ORDER,
    env,
  );
  logger.info({ url, stateDir: dir, auth, first_run: create }, 'STM emulator listening');

  return {
    url,
    env,
    envFile,
    adminUrl: `${url}${ADMIN_BASE}`,
    stateDir: dir,
    account: service.account,
    keypairs: () => service.keypairs().map((k) => ({ id: k.id, alias: k.alias, key_alg: k.key_alg })),
    setFaults: (f) => faults.set(f),
    createKeypair: async (p) => {
      const input = StmService.validateCreate({
        alias: p.alias,
        key_alg: p.key_alg,
        properties: { key_size: p.key_size, curve: p.curve ?? (p.key_alg === 'EdDSA' ? 'Ed25519' : undefined) },
      });
      const { keypair, certificate } = await service.createKeypair(input);
      return { id: keypair.id, certificateId: certificate.id };
    },
    suspendKeypair: async (id) => {
      service.updateKeypair(id, { status: 'SUSPENDED' });
    },
    setReleaseWindow: (id, open) => service.setReleaseWindow(id, open),
    setSignatureLimit: (id, remaining) => service.setSignatureLimit(id, remaining),
    stats: () => emu.stats(),
    resetStats: () => emu.resetStats(),
    stop: stopOnce(server, hsm, logger, 'STM emulator stopped'),
  };
}
