// The linux-arm64 prebuilt module, end to end on this x64 machine: an aarch64 C harness
// (test/native/arch_sign.c, Debian's aarch64 cross gcc) runs under qemu-user, dlopens the arm64
// libsignbridge-pkcs11.so from `npm run prebuilds -- linux-arm64` and signs through a real x64
// daemon (pkcs11 backend, the run's SoftHSMv2 token); node:crypto verifies each signature against
// the key's certificate from the token. The arm64 daemon and addon: node-versions.test.ts.
// Time: seconds once the arm64 prebuild is cached (the first build: 2–4 minutes).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archSign, verifies } from '../helpers/arch-sign.js';
import { arm64Runner, compileArm64Harness, MODULE_FILE, prebuildsFor } from '../helpers/cross-build.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { testKey } from '../helpers/token.js';

let work: string;
let daemon: TestDaemon;
let harness: string;
let module: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'sb-arm64-'));
  harness = join(work, 'arch_sign');
  compileArm64Harness('arch_sign.c', harness);
  module = join(await prebuildsFor('linux-arm64'), MODULE_FILE);
  daemon = await startTestDaemon();
}, 900_000);

afterAll(async () => {
  await daemon?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('arm64 module under qemu-user, x64 daemon', () => {
  for (const [label, kind] of [['ec-p256', 'ec'], ['rsa-3072', 'rsa']] as const) {
    it(`an aarch64 harness signs with ${label} through the arm64 module; node:crypto verifies it`, async () => {
      const s = await archSign(arm64Runner(), harness, module, label, kind, daemon.env);
      expect(s.arch).toBe('aarch64');
      const trusted = new X509Certificate(testKey(label).certPem);
      expect(s.cert.fingerprint256, 'the module serves the token certificate').toBe(trusted.fingerprint256);
      expect(verifies(s, trusted, kind)).toBe(true);
      // the check can fail: the same signature over another message does not verify
      expect(verifies({ ...s, message: Buffer.concat([s.message, Buffer.from('!')]) }, trusted, kind)).toBe(false);
    }, 120_000);
  }
});
