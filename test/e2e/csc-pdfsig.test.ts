// Document signing tools through the csc chain: pdfsig (poppler, NSS database with the module
// added by modutil) and `openssl cms -sign` (OpenSSL 3's pkcs11-provider) → libsignbridge-pkcs11.so
// → `signbridge daemon --backend csc` → CSC emulator. Both tools do the context-specific login
// of the CKA_ALWAYS_AUTHENTICATE key themselves: NSS with its password callback (pdfsig -kpw),
// the provider with its configured token PIN (pkcs11-module-token-pin = file:<OTP file>). Verified independently: `pdfsig` on the result ("Signature
// is Valid.", the emulator CA trusted in NSS) and plain `openssl cms -verify` with the CA file.
// ECDSA PDFs are not tested with pdfsig: Debian 12's pdfsig 22.12 fails about half of its ECDSA
// signatures even with keys in NSS's own database (a poppler bug); ECDSA goes through openssl cms.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { minimalPdf } from '../../src/demo/pdf.js';
import { nssDbWithModule, pdfsigSign, pdfsigVerify } from '../../src/demo/pdfsig.js';
import { requiredFile } from '../../src/demo/requirements.js';
import { sendOtp, startCscDaemon, type CscChain } from '../helpers/csc-chain.js';
import { startTestCscEmulator, type TestCscEmulator } from '../helpers/csc-emulator.js';
import { requireCommand } from '../helpers/consumer-tools.js';
import { signbridgeModule } from '../helpers/module.js';
import { describeRun, runCommand } from '../helpers/run.js';

const TOKEN = 'signbridge-csc';
let emu: TestCscEmulator;
let work: string;
let chain: CscChain;
let nssDir: string;
let toolEnv: NodeJS.ProcessEnv;

async function otpFor(credential: string): Promise<string> {
  const { run, otp } = await sendOtp(emu, chain, credential);
  expect(run.status, describeRun(run)).toBe(0);
  return otp;
}

beforeAll(async () => {
  requireCommand('pdfsig', 'poppler-utils');
  requireCommand('modutil', 'libnss3-tools');
  work = mkdtempSync(join(tmpdir(), 'sb-csc-docs-'));
  emu = await startTestCscEmulator();
  chain = await startCscDaemon(emu, work);
  toolEnv = { ...process.env, SIGNBRIDGE_SOCKET: chain.daemon.socket };
  nssDir = join(work, 'nss');
  for (const r of await nssDbWithModule(nssDir, signbridgeModule(), emu.env.SIGNBRIDGE_CSC_CA_FILE!, toolEnv)) expect(r.status, describeRun(r)).toBe(0);
}, 120_000);

afterAll(async () => {
  await chain?.daemon.stop();
  await emu?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('pdfsig through the csc backend', () => {
  it('pdfsig -add-signature -nick signbridge-csc:doc-rsa -kpw <OTP> signs; pdfsig reports "Signature is Valid."', async () => {
    const input = join(work, 'in.pdf');
    writeFileSync(input, minimalPdf('signbridge csc pdfsig'));
    const output = join(work, 'signed-rsa.pdf');
    const s = await pdfsigSign({ nssDir, token: TOKEN, label: 'doc-rsa', otp: await otpFor('doc-rsa'), input, output, env: toolEnv });
    expect(s.status, `${describeRun(s)}\n${chain.daemon.stderr()}`).toBe(0);
    const v = await pdfsigVerify(nssDir, output, { ...process.env });
    expect(v.stdout, describeRun(v)).toMatch(/Signature Validation: Signature is Valid\./);
    expect(v.stdout).toMatch(/Signer Certificate Common Name: .*doc-rsa/);
    expect(v.stdout).toMatch(/Certificate Validation: Certificate is Trusted\./);
  }, 120_000);

  it('a wrong OTP: pdfsig fails at once (NSS stops retrying at CKR_PIN_LOCKED) and no valid signature exists', async () => {
    const input = join(work, 'in.pdf');
    const output = join(work, 'signed-wrong.pdf');
    const otp = await otpFor('doc-rsa');
    const s = await pdfsigSign({ nssDir, token: TOKEN, label: 'doc-rsa', otp: otp === '000000' ? '111111' : '000000', input, output, env: toolEnv });
    expect(s.status, describeRun(s)).not.toBe(0);
    const v = await pdfsigVerify(nssDir, output, { ...process.env });
    expect(v.stdout).not.toMatch(/Signature is Valid/);
  }, 120_000);
});

describe('openssl cms -sign through pkcs11-provider and the csc backend', () => {
  for (const label of ['doc-rsa', 'doc-ec']) {
    it(`${label}: the OTP as pkcs11-module-token-pin; plain openssl cms -verify accepts it with the emulator CA`, async () => {
      const provider = requiredFile('pkcs11-provider');
      const otp = await otpFor(label);
      // the provider logs in (context-specific too) with pkcs11-module-token-pin: a 0600 file holding the OTP
      const pinFile = join(work, `${label}.otp`);
      writeFileSync(pinFile, otp, { mode: 0o600 });
      const conf = join(work, `openssl-${label}.cnf`);
      writeFileSync(conf, ['openssl_conf = openssl_init', '[openssl_init]', 'providers = provider_sect', '[provider_sect]', 'default = default_sect', 'pkcs11 = pkcs11_sect', '[default_sect]', 'activate = 1', '[pkcs11_sect]', `module = ${provider}`, `pkcs11-module-path = ${signbridgeModule()}`, `pkcs11-module-token-pin = file:${pinFile}`, 'activate = 1', ''].join('\n'));
      const cert = join(work, `${label}.pem`);
      const info = await emu.csc('/csc/v1/credentials/info', { credentialID: label, certificates: 'single' });
      const der = Buffer.from((info.json as { cert: { certificates: string[] } }).cert.certificates[0]!, 'base64');
      writeFileSync(cert, `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`);
      const msg = join(work, `${label}.txt`);
      writeFileSync(msg, `a document for ${label}\n`);
      const p7s = join(work, `${label}.p7s`);
      const key = `pkcs11:token=${TOKEN};object=${label};type=private`;
      const s = await runCommand('openssl', ['cms', '-sign', '-binary', '-in', msg, '-signer', cert, '-inkey', key, '-md', 'sha256', '-outform', 'DER', '-out', p7s], { env: { ...toolEnv, OPENSSL_CONF: conf } });
      expect(s.status, `${describeRun(s)}\n${chain.daemon.stderr()}`).toBe(0);
      const out = join(work, `${label}.out`);
      const v = await runCommand('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', p7s, '-content', msg, '-CAfile', emu.env.SIGNBRIDGE_CSC_CA_FILE!, '-out', out], { env: { PATH: process.env.PATH } });
      expect(v.status, describeRun(v)).toBe(0);
      expect(v.stderr).toMatch(/Verification successful/);
      expect(readFileSync(out).equals(readFileSync(msg))).toBe(true);
    }, 120_000);
  }
});
