// openssl (3.0) with OpenSSL 3's pkcs11-provider (1.0, Debian 12 bookworm-backports) →
// libsignbridge-pkcs11.so → signbridge daemon → SoftHSMv2 ("signbridge-matrix"). No engine: an
// openssl.cnf written here activates the default provider and the pkcs11 provider with
// pkcs11-module-path = the signbridge module, and every key is named by a pkcs11: URI. Plain openssl
// (no config, no provider, no module) verifies every signature against the key's certificate.
// The provider is what OpenSSL 4 keeps (ENGINEs are gone there) and what the kernel's sign-file
// uses; the libp11 engine form is tested in openssl.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requiredFile } from '../../src/demo/requirements.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { signbridgeModule } from '../helpers/module.js';
import { describeRun, runCommand, type RunResult } from '../helpers/run.js';
import { testKey } from '../helpers/token.js';
import { publicKeyFromCert, requireCommand, runOk, signedInLog, waitFor } from '../helpers/consumer-tools.js';

type Hash = 'sha256' | 'sha384';
const TOKEN = 'signbridge-matrix';
const uri = (label: string) => `pkcs11:token=${TOKEN};object=${label};type=private`;

let daemon: TestDaemon;
let work: string;
/** the provider's .so (/usr/lib/<multiarch>/ossl-modules/pkcs11.so) */
let provider: string;
/** what a user's shell has: the daemon's socket and OPENSSL_CONF pointing at the provider config */
let providerEnv: NodeJS.ProcessEnv;
/** plain openssl for verifying: no config, so no pkcs11 provider and no module */
let plainEnv: NodeJS.ProcessEnv;
const pub: Record<string, string> = {};
let msg: string;
let otherMsg: string;
const digest: Record<string, string> = {};
const otherDigest: Record<string, string> = {};

/**
 * The config the recipe shows (docs/recipes/openssl.md): loading any provider from a config
 * switches off the implicit default one, so it is activated too (keys, digests, encoders).
 */
function writeProviderConf(file: string, module = signbridgeModule()): string {
  writeFileSync(
    file,
    [
      'openssl_conf = openssl_init',
      '[openssl_init]',
      'providers = provider_sect',
      '[provider_sect]',
      'default = default_sect',
      'pkcs11 = pkcs11_sect',
      '[default_sect]',
      'activate = 1',
      '[pkcs11_sect]',
      `module = ${provider}`,
      `pkcs11-module-path = ${module}`,
      'activate = 1',
      '',
    ].join('\n'),
  );
  return file;
}

/** openssl with the provider config; stdin is closed, so a PIN prompt would fail the command. */
const withProvider = (args: string[]): Promise<RunResult> => runCommand('openssl', args, { env: providerEnv });
const plain = (args: string[]): Promise<RunResult> => runCommand('openssl', args, { env: plainEnv });

function verified(r: RunResult): boolean {
  return r.status === 0 && /Verified OK|Signature Verified Successfully|Verification successful|: OK$/m.test(r.stdout + r.stderr);
}

/** Expects one more "signed" entry for `primitive` in the daemon's log than `before`: signbridge signed it. */
async function expectSignedByDaemon(primitive: string, before: number): Promise<void> {
  expect(await waitFor(() => signedInLog(daemon.logFile, primitive) > before), `daemon log has a ${primitive} signature`).toBe(true);
}

/** The signing primitive the daemon logs for a key label (hash-then-sign arrives as a digest). */
const primitiveOf = (label: string): string => (label.startsWith('rsa') ? 'CKM_RSA_PKCS' : 'CKM_ECDSA');

beforeAll(async () => {
  requireCommand('openssl', 'openssl');
  // throws with the exact install lines (bookworm-backports, pinned) when pkcs11-provider is missing
  provider = requiredFile('pkcs11-provider');
  work = mkdtempSync(join(tmpdir(), 'sb-provider-'));
  daemon = await startTestDaemon({ token: 'matrix', extraArgs: ['--log-level', 'debug'] });
  plainEnv = { ...process.env, OPENSSL_CONF: '/dev/null' };
  for (const v of ['PKCS11_MODULE_PATH', 'OPENSSL_ENGINES', 'OPENSSL_MODULES', 'PKCS11_PROVIDER_MODULE']) delete plainEnv[v];
  providerEnv = { ...plainEnv, ...daemon.env, OPENSSL_CONF: writeProviderConf(join(work, 'openssl.cnf')) };
  const m = Buffer.concat([Buffer.from('signbridge provider test\n'), randomBytes(3000)]);
  const o = Buffer.concat([Buffer.from('signbridge provider test\n'), randomBytes(3000)]);
  msg = join(work, 'message.bin');
  otherMsg = join(work, 'other.bin');
  writeFileSync(msg, m);
  writeFileSync(otherMsg, o);
  for (const h of ['sha256', 'sha384'] as Hash[]) {
    digest[h] = join(work, `message.${h}`);
    writeFileSync(digest[h], createHash(h).update(m).digest());
    otherDigest[h] = join(work, `other.${h}`);
    writeFileSync(otherDigest[h], createHash(h).update(o).digest());
  }
  for (const label of ['rsa-2048', 'rsa-3072', 'ec-p256', 'ec-p384']) pub[label] = await publicKeyFromCert(testKey(label, 'matrix').certPath, work, label);
});
afterAll(async () => {
  await daemon?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the pkcs11 provider loads the signbridge module', () => {
  it('openssl list -providers shows it active; plain openssl does not', async () => {
    const r = await withProvider(['list', '-providers']);
    expect(r.status, describeRun(r)).toBe(0);
    expect(r.stdout).toMatch(/^\s+pkcs11\n\s+name: PKCS#11 Provider/m);
    expect(r.stdout).toMatch(/status: active/);
    expect((await plain(['list', '-providers'])).stdout).not.toMatch(/pkcs11/);
  });
});

describe('openssl pkeyutl -sign through the pkcs11 provider', () => {
  const cases: { label: string; hash: Hash; pss?: boolean; primitive: string }[] = [
    { label: 'rsa-2048', hash: 'sha256', primitive: 'CKM_RSA_PKCS' },
    { label: 'rsa-3072', hash: 'sha256', pss: true, primitive: 'CKM_RSA_PKCS_PSS' },
    { label: 'ec-p256', hash: 'sha256', primitive: 'CKM_ECDSA' },
    { label: 'ec-p384', hash: 'sha384', primitive: 'CKM_ECDSA' },
  ];
  for (const c of cases) {
    it(`${c.label}${c.pss ? ' RSA-PSS' : c.label.startsWith('rsa') ? ' PKCS#1 v1.5' : ''}: signs a ${c.hash} digest; plain openssl verifies it with the certificate's key`, async () => {
      const sig = join(work, `pkeyutl-${c.label}-${c.hash}${c.pss ? '-pss' : ''}.sig`);
      const opts = ['-pkeyopt', `digest:${c.hash}`, ...(c.pss ? ['-pkeyopt', 'rsa_padding_mode:pss', '-pkeyopt', 'rsa_pss_saltlen:digest'] : [])];
      const before = signedInLog(daemon.logFile, c.primitive);
      const s = await withProvider(['pkeyutl', '-sign', '-inkey', uri(c.label), '-in', digest[c.hash]!, '-out', sig, ...opts]);
      expect(s.status, `${describeRun(s)}\n--- daemon stderr\n${daemon.stderr()}`).toBe(0);
      await expectSignedByDaemon(c.primitive, before);

      const verifyArgs = (d: string) => ['pkeyutl', '-verify', '-pubin', '-inkey', pub[c.label]!, '-in', d, '-sigfile', sig, ...opts];
      const v = await plain(verifyArgs(digest[c.hash]!));
      expect(verified(v), describeRun(v)).toBe(true);
      // negative: the same signature over another message's digest must not verify
      expect(verified(await plain(verifyArgs(otherDigest[c.hash]!)))).toBe(false);
    });
  }
});

describe('openssl dgst -sha256 -sign through the pkcs11 provider', () => {
  for (const label of ['rsa-3072', 'ec-p256']) {
    it(`${label}: openssl dgst -verify (plain) says Verified OK, and fails on another message`, async () => {
      const sig = join(work, `dgst-${label}.sig`);
      const before = signedInLog(daemon.logFile, primitiveOf(label));
      const s = await withProvider(['dgst', '-sha256', '-sign', uri(label), '-out', sig, msg]);
      expect(s.status, `${describeRun(s)}\n--- daemon stderr\n${daemon.stderr()}`).toBe(0);
      await expectSignedByDaemon(primitiveOf(label), before);
      const v = await plain(['dgst', '-sha256', '-verify', pub[label]!, '-signature', sig, msg]);
      expect(v.stdout, describeRun(v)).toMatch(/^Verified OK$/m);
      const bad = await plain(['dgst', '-sha256', '-verify', pub[label]!, '-signature', sig, otherMsg]);
      expect(bad.stdout).toMatch(/Verification failure/);
      expect(verified(bad)).toBe(false);
    });
  }
});

describe('openssl req -new -x509 through the pkcs11 provider', () => {
  const cases: { label: string; hash: Hash; sigAlg: RegExp; primitive: string }[] = [
    { label: 'rsa-3072', hash: 'sha256', sigAlg: /sha256WithRSAEncryption/, primitive: 'CKM_RSA_PKCS' },
    { label: 'ec-p384', hash: 'sha384', sigAlg: /ecdsa-with-SHA384/, primitive: 'CKM_ECDSA' },
  ];
  for (const c of cases) {
    it(`${c.label}: a self-signed certificate carrying the token key, whose signature plain openssl checks`, async () => {
      const cert = join(work, `self-${c.label}.pem`);
      const before = signedInLog(daemon.logFile, c.primitive);
      const s = await withProvider(['req', '-new', '-x509', '-key', uri(c.label), `-${c.hash}`, '-subj', `/CN=provider ${c.label}/O=signbridge tests`, '-days', '30', '-out', cert]);
      expect(s.status, `${describeRun(s)}\n--- daemon stderr\n${daemon.stderr()}`).toBe(0);
      await expectSignedByDaemon(c.primitive, before);
      const text = (await runOk('openssl', ['x509', '-in', cert, '-noout', '-text'], plainEnv)).stdout;
      expect(text).toMatch(new RegExp(`Subject: CN = provider ${c.label}, O = signbridge tests`));
      expect(text).toMatch(c.sigAlg);
      expect((await runOk('openssl', ['x509', '-in', cert, '-noout', '-pubkey'], plainEnv)).stdout).toBe(readFileSync(pub[c.label]!, 'utf8'));
      // -check_ss_sig: openssl verify checks a trusted root's self-signature only when asked
      const v = await plain(['verify', '-check_ss_sig', '-CAfile', cert, cert]);
      expect(v.stdout, describeRun(v)).toMatch(/: OK$/m);
    });
  }
});

describe('openssl cms -sign through the pkcs11 provider', () => {
  for (const label of ['rsa-3072', 'ec-p256']) {
    it(`${label}: a detached CMS signature that plain openssl cms -verify accepts with the certificate as CA`, async () => {
      const cert = testKey(label, 'matrix').certPath;
      const p7s = join(work, `cms-${label}.p7s`);
      const before = signedInLog(daemon.logFile, primitiveOf(label));
      const s = await withProvider(['cms', '-sign', '-binary', '-in', msg, '-signer', cert, '-inkey', uri(label), '-md', 'sha256', '-outform', 'DER', '-out', p7s]);
      expect(s.status, `${describeRun(s)}\n--- daemon stderr\n${daemon.stderr()}`).toBe(0);
      await expectSignedByDaemon(primitiveOf(label), before);
      // the matrix certificates are self-signed code-signing certificates: -purpose any
      const verify = (content: string) => plain(['cms', '-verify', '-binary', '-inform', 'DER', '-in', p7s, '-content', content, '-CAfile', cert, '-purpose', 'any', '-out', join(work, 'cms-out.bin')]);
      const v = await verify(msg);
      expect(`${v.stdout}${v.stderr}`, describeRun(v)).toMatch(/Verification successful/);
      expect(v.status).toBe(0);
      expect(readFileSync(join(work, 'cms-out.bin')).equals(readFileSync(msg))).toBe(true);
      const bad = await verify(otherMsg);
      expect(bad.status, describeRun(bad)).not.toBe(0);
      expect(`${bad.stdout}${bad.stderr}`).not.toMatch(/Verification successful/);
    });
  }
});

// PKCS#11 3.0 (docs/design.md "PKCS#11 3.0 and random numbers"): pkcs11-provider asks the module
// for C_GetInterface first. OpenSC's pkcs11-spy, loaded as the provider's module, loads signbridge
// the same way and logs "[compat]" when a module has no 3.0 interface to hand over.
describe('pkcs11-provider through pkcs11-spy picks the PKCS#11 3.0 interface', () => {
  it('the first call is C_GetInterface, answered with 3.0 (no [compat]); the signature verifies', async () => {
    const arch = process.arch === 'arm64' ? 'aarch64' : 'x86_64';
    const spy = [`/usr/lib/${arch}-linux-gnu/pkcs11-spy.so`, `/usr/lib/${arch}-linux-gnu/pkcs11/pkcs11-spy.so`].find((p) => existsSync(p));
    if (!spy) throw new Error('pkcs11-spy.so not found: run as root `apt-get install -y opensc`');
    const log = join(work, 'provider.spy.log');
    const env = { ...providerEnv, OPENSSL_CONF: writeProviderConf(join(work, 'openssl-spy.cnf'), spy), PKCS11SPY: signbridgeModule(), PKCS11SPY_OUTPUT: log };
    const sig = join(work, 'spy-ec-p256.sig');
    const s = await runCommand('openssl', ['pkeyutl', '-sign', '-inkey', uri('ec-p256'), '-in', digest.sha256!, '-out', sig], { env });
    expect(s.status, describeRun(s)).toBe(0);
    const v = await plain(['pkeyutl', '-verify', '-pubin', '-inkey', pub['ec-p256']!, '-in', digest.sha256!, '-sigfile', sig]);
    expect(verified(v), describeRun(v)).toBe(true);
    const trace = readFileSync(log, 'utf8');
    const first = /^0: (C_\w+)\n([\s\S]*?)^Returned:\s+(\d+) (\w+)$/m.exec(trace);
    expect(first?.[1], trace.slice(0, 2000)).toBe('C_GetInterface');
    expect(first![2]).not.toMatch(/\[compat\]/);
    expect(first![4]).toBe('CKR_OK');
    expect(trace).toMatch(/^\d+: C_Sign\n/m);
  });
});
