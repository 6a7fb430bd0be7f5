// jarsigner (OpenJDK 17, SunPKCS11) → libsignbridge-pkcs11.so → daemon (--backend stm, mTLS) →
// STM emulator → SoftHSMv2. A real jar is signed with codesign-rsa and codesign-ec and checked by
// `jarsigner -verify -strict` against a truststore holding only the emulator's CA certificate.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type RunningDaemon } from '../../src/demo/daemon-process.js';
import { findOnPath } from '../../src/demo/requirements.js';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.js';
import { signbridgeModule } from '../helpers/module.js';
import { describeRun, runCommand, type RunResult } from '../helpers/run.js';

const JDK_APT = 'apt-get install -y openjdk-17-jdk-headless';
const PROVIDER = ['-providerClass', 'sun.security.pkcs11.SunPKCS11'];
let emu: TestEmulator;
let daemon: RunningDaemon;
let work: string;
let cfg: string;
let truststore: string;
let unsignedJar: string;

function run(cmd: string, args: string[], cwd = work): Promise<RunResult> {
  return runCommand(cmd, args, { env: { ...process.env, SIGNBRIDGE_SOCKET: daemon.socket, SIGNBRIDGE_DEBUG: '1' }, cwd, timeoutMs: 90_000 });
}
async function runOk(cmd: string, args: string[]): Promise<RunResult> {
  const r = await run(cmd, args);
  expect(r.status, `${describeRun(r)}\n--- daemon stderr\n${daemon.stderr()}`).toBe(0);
  return r;
}

beforeAll(async () => {
  for (const t of ['java', 'jar', 'keytool', 'jarsigner']) {
    if (!findOnPath(t)) throw new Error(`${t} is not installed: run as root: ${JDK_APT}`);
  }
  work = mkdtempSync(join(tmpdir(), 'sb-stm-jar-'));
  emu = await startTestEmulator();
  const env = { SM_HOST: emu.env.SM_HOST, SM_CLIENT_CERT_FILE: emu.env.SM_CLIENT_CERT_FILE, SM_CLIENT_CERT_PASSWORD: emu.env.SM_CLIENT_CERT_PASSWORD, SIGNBRIDGE_STM_CA_FILE: emu.env.SIGNBRIDGE_STM_CA_FILE };
  daemon = await startDaemon({ backend: 'stm', socket: join(work, 's.sock'), logFile: join(work, 'daemon.log'), env, extraArgs: ['--log-level', 'debug'] });
  cfg = join(work, 'signbridge.cfg');
  writeFileSync(cfg, `name=signbridge\nlibrary=${signbridgeModule()}\nslotListIndex=0\n`);
  const content = join(work, 'content');
  mkdirSync(content, { recursive: true });
  writeFileSync(join(content, 'hello.txt'), 'signed through signbridge and STM\n');
  unsignedJar = join(work, 'app.jar');
  await runOk('jar', ['cf', unsignedJar, '-C', content, '.']);
  truststore = join(work, 'trust.p12');
  await runOk('keytool', ['-importcert', '-noprompt', '-storetype', 'PKCS12', '-keystore', truststore, '-storepass', 'changeit', '-alias', 'stm-ca', '-file', emu.env.SIGNBRIDGE_STM_CA_FILE!]);
}, 120_000);

afterAll(async () => {
  await daemon?.stop();
  await emu?.stop();
  if (work && !process.env.SIGNBRIDGE_KEEP_TEST_STATE) rmSync(work, { recursive: true, force: true });
});

describe('jarsigner through the stm backend', () => {
  it('keytool lists both STM keys as PrivateKeyEntry', async () => {
    const r = await runOk('keytool', ['-list', '-storetype', 'PKCS11', ...PROVIDER, '-providerArg', cfg, '-storepass', 'anything']);
    expect(r.stdout).toMatch(/^codesign-rsa, PrivateKeyEntry,/m);
    expect(r.stdout).toMatch(/^codesign-ec, PrivateKeyEntry,/m);
  });

  for (const alias of ['codesign-rsa', 'codesign-ec']) {
    it(`${alias}: signs a jar; jarsigner -verify -strict against the emulator CA passes; a tampered jar fails`, async () => {
      const jar = join(work, `${alias}.jar`);
      copyFileSync(unsignedJar, jar);
      await runOk('jarsigner', ['-keystore', 'NONE', '-storetype', 'PKCS11', ...PROVIDER, '-providerArg', cfg, '-storepass', 'anything', jar, alias]);
      const v = await runOk('jarsigner', ['-verify', '-strict', '-verbose', '-certs', '-keystore', truststore, '-storepass', 'changeit', jar]);
      expect(v.stdout).toContain('jar verified.');
      expect(v.stdout).toContain(`CN=${alias}`);
      // flip a byte of the hello.txt entry's data: verification must fail
      const bytes = readFileSync(jar);
      const at = bytes.indexOf(Buffer.from('hello.txt')) + 'hello.txt'.length + 2;
      bytes[at] ^= 0xff;
      const bad = join(work, `${alias}-tampered.jar`);
      writeFileSync(bad, bytes);
      const t = await run('jarsigner', ['-verify', '-strict', '-keystore', truststore, '-storepass', 'changeit', bad]);
      expect(t.status === 0 && t.stdout.includes('jar verified.'), describeRun(t)).toBe(false);
    });
  }
});
