// Once per test run: check system requirements (fail — never skip — with the apt-get line), then
// create ONE SoftHSMv2 token in a temp dir with an RSA-3072 key ("rsa-3072", id 01) and an
// EC P-256 key ("ec-p256", id 02), each with a self-signed code-signing certificate. Tests get its
// details through inject('softhsm') (test/helpers/token.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { aptLine, missingFor } from '../../src/demo/requirements.js';
import { createToken } from '../../src/softhsm/token-setup.js';
import { readFileSync } from 'node:fs';
import { prebuildSanitized } from '../helpers/sanitize-build.js';
import { registeredSecrets, registerTestSecrets, scanLogs } from '../helpers/secrets.js';
import type { TestToken } from '../helpers/token.js';

declare module 'vitest' {
  export interface ProvidedContext {
    softhsm: TestToken;
    matrix: TestToken;
  }
}

export const TEST_TOKEN_LABEL = 'signbridge-test';

// Vitest runs a globalSetup once per project; all run in this one process, so the first call
// creates the token and the others reuse it (ONE token per run).
const SHARED = Symbol.for('signbridge.test.softhsm');
type Shared = { details: Promise<TestToken>; matrix: Promise<TestToken>; sanitized: Promise<void>; owners: number };
const g = globalThis as typeof globalThis & { [SHARED]?: Shared };

export default async function setup(project: TestProject): Promise<() => void> {
  let shared = g[SHARED];
  if (!shared) {
    // one directory for the whole run: every daemon copies its log here (testLogDir()), tests
    // register the secrets they make, and the teardown below greps the lot
    process.env.SIGNBRIDGE_TEST_LOG_DIR ??= mkdtempSync(join(tmpdir(), 'signbridge-test-logs-'));
    const details = createRunToken();
    // created after the first: SoftHSMv2 keygen is CPU-bound and the machine has two cores
    const matrix = details.then((d) => createMatrixToken(d.stateDir));
    // the ASan/UBSan build after the tokens (CPU), while the tests run (see prebuildSanitized);
    // a failure surfaces in the tests that need it, with the apt line
    shared = { details, matrix, sanitized: matrix.then(() => prebuildSanitized()).catch(() => undefined), owners: 0 };
    g[SHARED] = shared;
  }
  shared.owners++;
  const details = await shared.details;
  const matrix = await shared.matrix;
  project.provide('softhsm', details);
  project.provide('matrix', matrix);
  // also through the environment: forks inherit it, and helpers run outside a test context can read it
  process.env.SIGNBRIDGE_TEST_TOKEN = JSON.stringify(details);
  process.env.SIGNBRIDGE_TEST_MATRIX_TOKEN = JSON.stringify(matrix);
  return async () => {
    // the last project to finish removes the token
    if (--shared.owners > 0) return;
    await shared.sanitized;
    delete g[SHARED];
    // After every test of the run: no secret in any log any daemon wrote (the issue's "a test greps
    // every log line the suite produced"). A throw here fails the run.
    const logDir = process.env.SIGNBRIDGE_TEST_LOG_DIR!;
    const secrets = registeredSecrets(logDir);
    for (const t of [details, matrix]) secrets.set(`token PIN of ${t.tokenLabel}`, readFileSync(t.pinFile, 'utf8').trim());
    const { files, hits } = scanLogs(logDir, secrets);
    console.log(`[secrets] run-wide scan: ${secrets.size} secrets × 3 forms over ${files} daemon logs: ${hits.length} hits`);
    if (hits.length > 0) throw new Error(`secrets found in daemon logs (the values are not shown):\n${hits.join('\n')}`);
    if (!process.env.SIGNBRIDGE_KEEP_TEST_STATE) rmSync(logDir, { recursive: true, force: true });
    if (!process.env.SIGNBRIDGE_KEEP_TEST_STATE) rmSync(details.stateDir, { recursive: true, force: true });
  };
}

async function createRunToken(): Promise<TestToken> {
  const missing = missingFor(['test']);
  if (missing.length > 0) {
    throw new Error(
      `missing system requirements for the tests: ${missing.map((r) => `${r.name} (${r.package})`).join(', ')}.\n` +
        `Run as root: ${aptLine(missing)}   (or use \`npm test\`, which installs them when run as root)`,
    );
  }
  const stateDir = mkdtempSync(join(tmpdir(), 'signbridge-test-'));
  const token = await createToken({
    stateDir,
    tokenLabel: TEST_TOKEN_LABEL,
    organization: 'signbridge tests',
    keys: [
      { type: 'rsa', bits: 3072, label: 'rsa-3072', idHex: '01' },
      { type: 'ec', curve: 'P-256', label: 'ec-p256', idHex: '02' },
    ],
  });
  return describeToken(stateDir, token);
}

export const MATRIX_TOKEN_LABEL = 'signbridge-matrix';

/**
 * The second token: one key of every type and size the mechanisms are tested with (the consumers
 * issue). Its own token so the first one stays the small two-key token the chain tests count on.
 * The Ed25519 key shares the backing token; the daemon serves it from a slot of its own.
 */
async function createMatrixToken(runDir: string): Promise<TestToken> {
  const stateDir = join(runDir, 'matrix');
  const token = await createToken({
    stateDir,
    tokenLabel: MATRIX_TOKEN_LABEL,
    organization: 'signbridge tests',
    keys: [
      { type: 'rsa', bits: 2048, label: 'rsa-2048', idHex: '11' },
      { type: 'rsa', bits: 3072, label: 'rsa-3072', idHex: '12' },
      { type: 'rsa', bits: 4096, label: 'rsa-4096', idHex: '13' },
      { type: 'ec', curve: 'P-256', label: 'ec-p256', idHex: '21' },
      { type: 'ec', curve: 'P-384', label: 'ec-p384', idHex: '22' },
      { type: 'ed25519', label: 'ed25519', idHex: '31' },
    ],
  });
  return describeToken(stateDir, token);
}

function describeToken(stateDir: string, token: Awaited<ReturnType<typeof createToken>>): TestToken {
  const details: TestToken = {
    stateDir,
    softhsmConf: token.softhsmConf,
    library: token.library,
    tokenLabel: token.tokenLabel,
    tokenSerial: token.tokenSerial,
    pinFile: token.pinFile,
    keys: token.keys.map((k) => ({
      label: k.label,
      idHex: k.idHex,
      type: k.type,
      ...(k.bits !== undefined ? { bits: k.bits } : {}),
      ...(k.curve !== undefined ? { curve: k.curve } : {}),
      certPath: k.certPath,
      certPem: k.certPem,
    })),
  };
  return details;
}
