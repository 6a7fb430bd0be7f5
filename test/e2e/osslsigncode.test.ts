// osslsigncode → libsignbridge-pkcs11.so → signbridge daemon → SoftHSMv2: a real Windows PE is
// signed with the RSA and the ECDSA key, and osslsigncode's own verifier checks the result
// against the certificate the token holds (never against anything signbridge computed).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { osslsigncodeSign, osslsigncodeVerify, parseVerify } from '../../src/demo/osslsigncode.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { signbridgeModule, unsignedPe } from '../helpers/module.js';
import { describeRun, runCommand } from '../helpers/run.js';
import { testKey, testToken } from '../helpers/token.js';

let daemon: TestDaemon;

/** "signed" entries the daemon logged (at debug level) for a mechanism: proof the signature went through it. */
function signedInLog(mechanism: string): number {
  return readFileSync(daemon.logFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"msg":"signed"') && l.includes(`"mechanism":"${mechanism}"`)).length;
}

async function waitFor(cond: () => boolean, ms = 3000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) if (cond()) return true;
  return cond();
}
let work: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'sb-osslsigncode-'));
  daemon = await startTestDaemon({ extraArgs: ['--log-level', 'debug'] });
});
afterAll(async () => {
  await daemon?.stop();
  rmSync(work, { recursive: true, force: true });
});

const cases = [
  { label: 'rsa-3072', keyType: 'rsa', mechanism: 'CKM_RSA_PKCS' },
  { label: 'ec-p256', keyType: 'ec', mechanism: 'CKM_ECDSA' },
];

describe('osslsigncode through the signbridge module', () => {
  for (const c of cases) {
    it(`signs win32-loader.exe with ${c.label} (certificate read from the token) and osslsigncode verify passes`, async () => {
      const t = testToken();
      const key = testKey(c.label);
      const out = join(work, `signed-${c.label}.exe`);
      const signedBefore = signedInLog(c.mechanism);
      const s = await osslsigncodeSign({
        module: signbridgeModule(),
        tokenLabel: t.tokenLabel,
        keyLabel: c.label,
        input: unsignedPe(),
        output: out,
        env: daemon.env,
      });
      expect(s.status, `${describeRun(s)}\n--- daemon stderr\n${daemon.stderr()}`).toBe(0);
      expect(s.stdout).toMatch(/^Succeeded$/m);
      // the daemon (pino, asynchronous) logged the signature: it was made through signbridge
      expect(await waitFor(() => signedInLog(c.mechanism) > signedBefore), readFileSync(daemon.logFile, 'utf8')).toBe(true);

      const v = await osslsigncodeVerify(out, key.certPath);
      expect(v.status, describeRun(v)).toBe(0);
      expect(v.stdout).toMatch(/^Signature verification: ok$/m);
      expect(v.stdout).toMatch(/^Number of verified signatures: 1$/m);
      expect(v.stdout).toMatch(/^Message digest algorithm\s*: SHA256$/m);
      const verdict = parseVerify(v);
      expect(verdict.ok).toBe(true);
      expect(verdict.signer).toBe(`/CN=signbridge ${c.label}/O=signbridge tests`);

      // the signature embeds the certificate the token holds (read back with openssl, not with our code)
      const sigPem = join(work, `sig-${c.label}.pem`);
      const x = await runCommand('osslsigncode', ['extract-signature', '-pem', '-in', out, '-out', sigPem]);
      expect(x.status, describeRun(x)).toBe(0);
      const p7 = await runCommand('openssl', ['pkcs7', '-in', sigPem, '-print_certs']);
      expect(p7.status, describeRun(p7)).toBe(0);
      const embedded = new X509Certificate(p7.stdout.slice(p7.stdout.indexOf('-----BEGIN CERTIFICATE-----')));
      expect(embedded.raw.equals(new X509Certificate(readFileSync(key.certPath)).raw)).toBe(true);
      expect(embedded.publicKey.asymmetricKeyType).toBe(c.keyType);

      // against the other key's certificate the same file must fail: the verifier really checks
      const other = testToken().keys.find((k) => k.label !== c.label)!;
      expect(parseVerify(await osslsigncodeVerify(out, other.certPath)).ok).toBe(false);
    });
  }

  // The form, -pkcs11engine <path>: osslsigncode 2.9 (bookworm-backports) takes it;
  // 2.5 (Debian 12 main) refuses any engine path with "bad engine id" before it loads a module,
  // which is why the demo and the README leave -pkcs11engine out (the engine is found by its id).
  it('signs with -pkcs11engine <path> too (osslsigncode >= 2.6; 2.5 rejects the path itself)', async () => {
    const version = /osslsigncode (\d+)\.(\d+)/.exec((await runCommand('osslsigncode', ['--version'])).stdout);
    expect(version, 'osslsigncode --version').not.toBeNull();
    const [major, minor] = [Number(version![1]), Number(version![2])];
    const out = join(work, 'signed-engine-path.exe');
    const s = await osslsigncodeSign({
      module: signbridgeModule(),
      tokenLabel: testToken().tokenLabel,
      keyLabel: 'rsa-3072',
      input: unsignedPe(),
      output: out,
      env: daemon.env,
      enginePath: true,
    });
    if (major === 2 && minor < 6) {
      expect(`${s.stdout}${s.stderr}`).toMatch(/bad engine id/);
      return;
    }
    expect(s.status, describeRun(s)).toBe(0);
    expect(parseVerify(await osslsigncodeVerify(out, testKey('rsa-3072').certPath)).ok).toBe(true);
  });

  it('verifying the original, unsigned PE fails (the assertions above can fail)', async () => {
    const v = await osslsigncodeVerify(unsignedPe(), testKey('rsa-3072').certPath);
    expect(v.status).not.toBe(0);
    expect(`${v.stdout}\n${v.stderr}`).not.toMatch(/^Signature verification: ok$/m);
    expect(parseVerify(v).ok).toBe(false);
  });

  it('a tampered signed file no longer verifies', async () => {
    const out = join(work, 'signed-rsa-3072.exe');
    const bytes = readFileSync(out);
    bytes[0x400] = bytes[0x400]! ^ 0xff; // inside the first section, covered by the Authenticode digest
    const tampered = join(work, 'tampered.exe');
    writeFileSync(tampered, bytes);
    const v = await osslsigncodeVerify(tampered, testKey('rsa-3072').certPath);
    expect(parseVerify(v).ok).toBe(false);
  });
});
