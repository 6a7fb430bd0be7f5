// Runs examples/graphene-sign.mjs (graphene-pk11 → libsignbridge-pkcs11.so → daemon → SoftHSMv2) as
// a child process, the way a user runs it, for an RSA key, an EC key and the Ed25519 key of the
// "matrix" token. The example verifies every signature with node:crypto against the certificate it
// reads from the token; this test checks its table covers exactly the key's mechanisms, all "ok",
// with the lengths the spec fixes, that it read the right certificate, and that it fails clearly.
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { signbridgeModule } from '../helpers/module.js';
import { describeRun, runCommand, type RunResult } from '../helpers/run.js';
import { mechanismsOf, signatureLength } from '../helpers/signing.js';
import { testToken, type TestKey } from '../helpers/token.js';

const EXAMPLE = fileURLToPath(new URL('../../examples/graphene-sign.mjs', import.meta.url));
const token = testToken('matrix');
const key = (label: string): TestKey => token.keys.find((k) => k.label === label)!;

let daemon: TestDaemon;

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  // no SIGNBRIDGE_MODULE from the outer environment unless a case sets it
  const base = { ...process.env, ...daemon.env };
  delete base.SIGNBRIDGE_MODULE;
  return runCommand(process.execPath, [EXAMPLE, ...args], { env: { ...base, ...env }, timeoutMs: 60_000 });
}

/** The table rows: mechanism → parts → [bytes, result]. */
function table(stdout: string): Map<string, [string, string]> {
  const rows = new Map<string, [string, string]>();
  for (const line of stdout.split('\n')) {
    const m = /^(CKM_\w+)\s+(\S+)\s+(single|multi)\s+(\S+)\s+(.*)$/.exec(line);
    if (m) rows.set(`${m[1]} ${m[3]}`, [m[4]!, m[5]!.trim()]);
  }
  return rows;
}

function expectAllVerified(r: RunResult, k: TestKey, tokenLabel: string): void {
  expect(r.status, describeRun(r)).toBe(0);
  expect(r.stdout).toContain(`key "${k.label}" on token "${tokenLabel}" (CKA_ID ${k.idHex})`);
  // the certificate it read from the token is the key's certificate
  const subject = new X509Certificate(k.certPem).subject.replace(/\n/g, ', ');
  expect(r.stdout).toContain(`certificate: ${subject}`);
  const family = k.type === 'ed25519' ? 'ed25519' : k.type;
  const want = mechanismsOf(family).flatMap((m) => [`${m.name} single`, ...(m.multipart ? [`${m.name} multi`] : [])]);
  const rows = table(r.stdout);
  expect([...rows.keys()].sort(), describeRun(r)).toEqual(want.sort());
  for (const [row, [bytes, result]] of rows) {
    expect(result, `${row}\n${describeRun(r)}`).toBe('ok');
    expect(Number(bytes), row).toBe(signatureLength(k));
  }
  expect(r.stdout).toContain(`all ${want.length} signatures verified`);
}

beforeAll(async () => {
  daemon = await startTestDaemon({ token: 'matrix' });
});

afterAll(async () => {
  await daemon?.stop();
});

describe('examples/graphene-sign.mjs', () => {
  it('RSA-3072: every RSA mechanism, PKCS#1 v1.5 and PSS, single- and multi-part (module from the local build)', async () => {
    const r = await run(['--label', 'rsa-3072']);
    expectAllVerified(r, key('rsa-3072'), token.tokenLabel);
    expect(r.stdout).toContain(`module: ${signbridgeModule()}`);
  });

  it('EC P-384: CKM_ECDSA and CKM_ECDSA_SHA256/384/512 (module from --module)', async () => {
    const r = await run(['--label', 'ec-p384', '--token', token.tokenLabel, '--module', signbridgeModule(), '--message', 'P-384 ✓']);
    expectAllVerified(r, key('ec-p384'), token.tokenLabel);
  });

  it('Ed25519 on its own token: CKM_EDDSA (module from SIGNBRIDGE_MODULE)', async () => {
    const edToken = `${token.tokenLabel} EdDSA`;
    const r = await run(['--label', 'ed25519', '--token', edToken], { SIGNBRIDGE_MODULE: signbridgeModule() });
    expectAllVerified(r, key('ed25519'), edToken);
  });

  it('fails with exit 2 and says what to do: unknown label, wrong token, no daemon, no --label', async () => {
    const unknown = await run(['--label', 'no-such-key']);
    expect(unknown.status, describeRun(unknown)).toBe(2);
    expect(unknown.stderr).toContain('no private key labelled "no-such-key"');
    expect(unknown.stderr).toContain(`"${token.tokenLabel} EdDSA"`); // lists the tokens it looked at
    expect(unknown.stderr).toContain('signbridge keys');

    const wrongToken = await run(['--label', 'ed25519', '--token', token.tokenLabel]);
    expect(wrongToken.status, describeRun(wrongToken)).toBe(2);
    expect(wrongToken.stderr).toContain(`on token "${token.tokenLabel}"`);

    const noDaemon = await run(['--label', 'rsa-2048'], { SIGNBRIDGE_SOCKET: join(daemon.dir, 'nobody.sock') });
    expect(noDaemon.status, describeRun(noDaemon)).toBe(2);
    expect(noDaemon.stderr).toMatch(/cannot reach the signbridge daemon.*start it/);

    const usage = await run([]);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toContain('--label is required');
  });
});
