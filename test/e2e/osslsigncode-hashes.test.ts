// osslsigncode -h sha384 / -h sha512 → libp11 engine → libsignbridge-pkcs11.so → signbridge daemon →
// SoftHSMv2 ("signbridge-test"), with the RSA-3072 and the P-256 key. osslsigncode's own verifier
// checks each file against the key's certificate and reports the digest algorithm; openssl reads the
// algorithms out of the embedded PKCS#7 signature. (SHA-256 is covered by osslsigncode.test.ts.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { osslsigncodeSign, osslsigncodeVerify, parseVerify } from '../../src/demo/osslsigncode.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { signbridgeModule, unsignedPe } from '../helpers/module.js';
import { describeRun } from '../helpers/run.js';
import { testKey, testToken } from '../helpers/token.js';
import { requireCommand, runOk, signedInLog, waitFor } from '../helpers/consumer-tools.js';

const OID: Record<string, string> = { sha384: '2.16.840.1.101.3.4.2.2', sha512: '2.16.840.1.101.3.4.2.3' };

let daemon: TestDaemon;
let work: string;

beforeAll(async () => {
  requireCommand('osslsigncode', 'osslsigncode');
  requireCommand('openssl', 'openssl');
  work = mkdtempSync(join(tmpdir(), 'sb-osslsigncode-h-'));
  daemon = await startTestDaemon({ extraArgs: ['--log-level', 'debug'] });
});
afterAll(async () => {
  await daemon?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

const cases = [
  { label: 'rsa-3072', primitive: 'CKM_RSA_PKCS' },
  { label: 'ec-p256', primitive: 'CKM_ECDSA' },
];

describe('osslsigncode -h sha384 / sha512 through the signbridge module', () => {
  for (const hash of ['sha384', 'sha512'] as const) {
    for (const c of cases) {
      it(`-h ${hash} with ${c.label}: osslsigncode verify passes and reports ${hash.toUpperCase()}`, async () => {
        const out = join(work, `signed-${c.label}-${hash}.exe`);
        const before = signedInLog(daemon.logFile, c.primitive);
        // the form docs/recipes/osslsigncode.md shows: no -pkcs11engine (osslsigncode 2.5 rejects a
        // path; the engine is found by its id), certificate read from the token, no PIN
        const s = await osslsigncodeSign({
          module: signbridgeModule(),
          tokenLabel: testToken().tokenLabel,
          keyLabel: c.label,
          input: unsignedPe(),
          output: out,
          hash,
          env: daemon.env,
        });
        expect(s.status, `${describeRun(s)}\n--- daemon stderr\n${daemon.stderr()}`).toBe(0);
        expect(s.stdout).toMatch(/^Succeeded$/m);
        expect(await waitFor(() => signedInLog(daemon.logFile, c.primitive) > before), 'the daemon made the signature').toBe(true);

        const v = await osslsigncodeVerify(out, testKey(c.label).certPath);
        expect(v.status, describeRun(v)).toBe(0);
        expect(v.stdout).toMatch(/^Signature verification: ok$/m);
        expect(v.stdout).toMatch(/^Number of verified signatures: 1$/m);
        // both the file digest and the signer's digest use the requested algorithm
        expect(v.stdout).toMatch(new RegExp(`^Message digest algorithm\\s*: ${hash.toUpperCase()}$`, 'm'));
        expect(v.stdout).toMatch(new RegExp(`^Message digest algorithm: ${hash.toUpperCase()}$`, 'm'));
        expect(v.stdout).not.toMatch(/^Message digest algorithm\s*: SHA256$/m);
        const verdict = parseVerify(v);
        expect(verdict.ok).toBe(true);
        expect(verdict.digest).toBe(hash.toUpperCase());
        expect(verdict.signer).toBe(`/CN=signbridge ${c.label}/O=signbridge tests`);

        // openssl's reading of the embedded PKCS#7: SignedData and SignerInfo name the same digest
        const sigPem = join(work, `sig-${c.label}-${hash}.pem`);
        await runOk('osslsigncode', ['extract-signature', '-pem', '-in', out, '-out', sigPem]);
        const p7 = (await runOk('openssl', ['pkcs7', '-in', sigPem, '-print', '-noout'])).stdout;
        const digestAlgs = [...p7.matchAll(/algorithm: (sha\d+) \(([\d.]+)\)/g)].map((m) => `${m[1]} ${m[2]}`);
        expect(digestAlgs.length, p7).toBeGreaterThanOrEqual(2);
        expect(new Set(digestAlgs)).toEqual(new Set([`${hash} ${OID[hash]}`]));
        if (c.label.startsWith('ec')) expect(p7).toMatch(new RegExp(`algorithm: ecdsa-with-${hash.toUpperCase()}`));

        // the verifier can say no: another key's certificate does not verify this file
        const other = testToken().keys.find((k) => k.label !== c.label)!;
        expect(parseVerify(await osslsigncodeVerify(out, other.certPath)).ok).toBe(false);
      });
    }
  }
});
