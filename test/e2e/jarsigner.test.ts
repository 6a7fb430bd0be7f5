// keytool / jarsigner (OpenJDK 17, SunPKCS11) → libsignbridge-pkcs11.so → signbridge daemon →
// SoftHSMv2 ("signbridge-matrix"). The commands are the ones docs/recipes/java.md gives users.
// A real jar (built by the JDK's `jar`) is signed with every RSA and EC key; the result is checked
// by `jarsigner -verify -strict` against a truststore holding the token's certificates, and
// independently by `openssl cms -verify` on the signature block — never by comparing with
// anything signbridge computed. Tampering with the jar must make verification fail. Also: what
// SunPKCS11 calls (pkcs11-spy trace), a CA chain found on the token, and the digest mechanisms the
// module lists for SunPKCS11's RSASSA-PSS.
import * as graphene from 'graphene-pk11';
import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { X509Certificate, createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type RunningDaemon } from '../../src/demo/daemon-process.js';
import { findOnPath, multiarch } from '../../src/demo/requirements.js';
import { parseCertificate } from '../../src/core/der.js';
import { createToken } from '../../src/softhsm/token-setup.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { openModule } from '../helpers/module-fixture.js';
import { signbridgeModule } from '../helpers/module.js';
import { describeRun, runCommand, type RunResult } from '../helpers/run.js';
import { testKey } from '../helpers/token.js';

const JDK_APT = 'apt-get install -y openjdk-17-jdk-headless';
const PROVIDER = ['-providerClass', 'sun.security.pkcs11.SunPKCS11'];
// Any value: the token does not set CKF_LOGIN_REQUIRED, so SunPKCS11 never calls C_Login and the
// value goes nowhere (design.md "Login model", docs/recipes/java.md).
const STOREPASS = 'anything';
const TRUSTPASS = 'changeit';
// The RSA and EC keys of the matrix token (slot 0). ed25519 lives in slot 1: JDK 17's SunPKCS11
// has no EdDSA.
const KEYS = ['rsa-2048', 'rsa-3072', 'rsa-4096', 'ec-p256', 'ec-p384'];

let daemon: TestDaemon;
let work: string;
let env: NodeJS.ProcessEnv;
let cfg: string; // SunPKCS11 configuration, slot 0
let truststore: string;
let unsignedJar: string;

function requireCommand(cmd: string, apt: string): void {
  if (!findOnPath(cmd)) throw new Error(`${cmd} is not installed: run as root: ${apt}`);
}

function run(cmd: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}, cwd = work): Promise<RunResult> {
  return runCommand(cmd, args, { env: { ...env, ...extraEnv }, cwd, timeoutMs: 60_000 });
}

async function runOk(cmd: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  const r = await run(cmd, args, extraEnv);
  expect(r.status, `${describeRun(r)}\n--- daemon stderr\n${daemon.stderr()}`).toBe(0);
  return r;
}

/** "signed" lines the daemon logged (debug level) for a primitive: proof a signature went through it. */
function signedInLog(primitive: string): number {
  return readFileSync(daemon.logFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"msg":"signed"') && l.includes(`"mechanism":"${primitive}"`)).length;
}
async function waitFor(cond: () => boolean, ms = 3000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 25))) if (cond()) return true;
  return cond();
}

function writeConfig(name: string, library: string, slotListIndex: number): string {
  const file = join(work, `${name}.cfg`);
  writeFileSync(file, `name=signbridge\nlibrary=${library}\nslotListIndex=${slotListIndex}\n`);
  return file;
}

function keyBits(label: string): number {
  const k = testKey(label, 'matrix');
  return k.bits ?? { 'P-256': 256, 'P-384': 384 }[k.curve ?? ''] ?? 0;
}

/** SHA-256 fingerprint as keytool prints it, computed by node:crypto from the certificate file. */
function fingerprint(label: string): string {
  return new X509Certificate(readFileSync(testKey(label, 'matrix').certPath)).fingerprint256;
}

/** `jarsigner` signing `jar` in place with a key of the token (the recipe's command). */
function sign(jar: string, alias: string, sigalg?: string, config = cfg, extraEnv: NodeJS.ProcessEnv = {}) {
  return run(
    'jarsigner',
    ['-keystore', 'NONE', '-storetype', 'PKCS11', ...PROVIDER, '-providerArg', config, '-storepass', STOREPASS,
      ...(sigalg ? ['-sigalg', sigalg] : []), jar, alias],
    extraEnv,
  );
}

function verifyStrict(jar: string) {
  return run('jarsigner', ['-verify', '-strict', '-verbose', '-certs', '-keystore', truststore, '-storepass', TRUSTPASS, jar]);
}

/** Extracts META-INF/<ALIAS>.SF and its signature block (.RSA / .EC) from a signed jar into `dir`. */
async function signatureFiles(jar: string, alias: string, dir: string) {
  mkdirSync(dir, { recursive: true });
  const base = alias.toUpperCase();
  const r = await run('jar', ['xf', jar, 'META-INF/'], {}, dir);
  expect(r.status, describeRun(r)).toBe(0);
  const sf = join(dir, 'META-INF', `${base}.SF`);
  const block = ['RSA', 'EC'].map((e) => join(dir, 'META-INF', `${base}.${e}`)).find((f) => existsSync(f));
  expect(existsSync(sf), `${sf} in the signed jar`).toBe(true);
  expect(block, `META-INF/${base}.RSA or .EC in the signed jar`).toBeDefined();
  return { sf, block: block! };
}

beforeAll(async () => {
  for (const t of ['java', 'jar', 'keytool', 'jarsigner']) requireCommand(t, JDK_APT);
  requireCommand('openssl', 'apt-get install -y openssl');
  work = mkdtempSync(join(tmpdir(), 'sb-jarsigner-'));
  daemon = await startTestDaemon({ token: 'matrix', extraArgs: ['--log-level', 'debug'] });
  env = { ...process.env, ...daemon.env };
  cfg = writeConfig('signbridge', signbridgeModule(), 0);

  // A real jar: a text file and some binary data, built by the JDK's own tool.
  const content = join(work, 'content');
  mkdirSync(join(content, 'data'), { recursive: true });
  writeFileSync(join(content, 'hello.txt'), 'signed through signbridge\n');
  writeFileSync(join(content, 'data', 'blob.bin'), Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 31) & 0xff)));
  unsignedJar = join(work, 'app.jar');
  await runOk('jar', ['cf', unsignedJar, '-C', content, '.']);

  // The verifier's trust: the token's self-signed certificates, imported from their PEM files.
  truststore = join(work, 'trust.p12');
  for (const k of KEYS) {
    await runOk('keytool', ['-importcert', '-noprompt', '-storetype', 'PKCS12', '-keystore', truststore, '-storepass', TRUSTPASS,
      '-alias', k, '-file', testKey(k, 'matrix').certPath]);
  }
});

afterAll(async () => {
  await daemon?.stop();
  if (work && !process.env.SIGNBRIDGE_KEEP_TEST_STATE) rmSync(work, { recursive: true, force: true });
});

describe('keytool -list through SunPKCS11', () => {
  it('lists every RSA and EC key of slot 0 as a PrivateKeyEntry under its label, with its certificate', async () => {
    const r = await runOk('keytool', ['-list', '-storetype', 'PKCS11', ...PROVIDER, '-providerArg', cfg, '-storepass', STOREPASS]);
    expect(r.stdout).toMatch(/^Keystore provider: SunPKCS11-signbridge$/m);
    expect(r.stdout).toMatch(new RegExp(`^Your keystore contains ${KEYS.length} entries$`, 'm'));
    const entries = [...r.stdout.matchAll(/^([^\s,]+), PrivateKeyEntry,\s*\nCertificate fingerprint \(SHA-256\): ([0-9A-F:]+)$/gm)];
    expect(Object.fromEntries(entries.map((m) => [m[1], m[2]]))).toEqual(Object.fromEntries(KEYS.map((k) => [k, fingerprint(k)])));
    expect(r.stdout).not.toContain('ed25519'); // served from slot 1
  });

  it('needs no password at all with -protected (no C_Login is made)', async () => {
    const r = await runOk('keytool', ['-list', '-storetype', 'PKCS11', ...PROVIDER, '-providerArg', cfg, '-protected']);
    expect(r.stdout).toMatch(new RegExp(`^Your keystore contains ${KEYS.length} entries$`, 'm'));
  });

  it('slotListIndex=1 (the EdDSA token) loads too and shows only the Ed25519 key', async () => {
    const r = await runOk('keytool', ['-list', '-storetype', 'PKCS11', ...PROVIDER, '-providerArg', writeConfig('eddsa', signbridgeModule(), 1),
      '-storepass', STOREPASS]);
    expect(r.stdout).toMatch(/^Your keystore contains 1 entry$/m);
    expect(r.stdout).toMatch(/^ed25519, PrivateKeyEntry,/m);
  });
});

const cases: { key: string; sigalg?: string; shown: string; primitive: string }[] = [
  { key: 'rsa-2048', shown: 'SHA256withRSA', primitive: 'CKM_RSA_PKCS' }, // jarsigner's default for the key
  { key: 'rsa-3072', sigalg: 'SHA384withRSA', shown: 'SHA384withRSA', primitive: 'CKM_RSA_PKCS' },
  { key: 'rsa-4096', sigalg: 'SHA512withRSA', shown: 'SHA512withRSA', primitive: 'CKM_RSA_PKCS' },
  { key: 'rsa-3072', sigalg: 'RSASSA-PSS', shown: 'RSASSA-PSS', primitive: 'CKM_RSA_PKCS_PSS' },
  { key: 'ec-p256', sigalg: 'SHA256withECDSA', shown: 'SHA256withECDSA', primitive: 'CKM_ECDSA' },
  { key: 'ec-p384', sigalg: 'SHA384withECDSA', shown: 'SHA384withECDSA', primitive: 'CKM_ECDSA' },
  { key: 'ec-p256', sigalg: 'SHA512withECDSA', shown: 'SHA512withECDSA', primitive: 'CKM_ECDSA' },
];

describe('jarsigner signs through SunPKCS11; jarsigner -verify and openssl accept the result', () => {
  for (const c of cases) {
    it(`${c.key} ${c.sigalg ? `-sigalg ${c.sigalg}` : '(default algorithm)'}`, async () => {
      const jar = join(work, `${c.key}-${c.shown}.jar`);
      writeFileSync(jar, readFileSync(unsignedJar));
      const before = signedInLog(c.primitive);
      const s = await sign(jar, c.key, c.sigalg);
      expect(s.status, `${describeRun(s)}\n--- daemon stderr\n${daemon.stderr()}`).toBe(0);
      expect(s.stdout).toMatch(/^jar signed\.$/m);
      // the daemon logged the signature: it was made through signbridge, not by some other provider
      expect(await waitFor(() => signedInLog(c.primitive) > before), readFileSync(daemon.logFile, 'utf8')).toBe(true);

      const v = await verifyStrict(jar);
      expect(v.status, describeRun(v)).toBe(0);
      expect(v.stdout).toMatch(/^jar verified\.$/m);
      expect(v.stdout).toContain(`Signed by "O=signbridge tests, CN=signbridge ${c.key}"`);
      expect(v.stdout).toMatch(new RegExp(`Signature algorithm: ${c.shown}, ${keyBits(c.key)}-bit key`));

      // Independently: OpenSSL checks the PKCS#7 signature block over the .SF file against the
      // token's certificate (the self-signed certificate is its own trust anchor).
      const { sf, block } = await signatureFiles(jar, c.key, join(work, `x-${c.key}-${c.shown}`));
      const o = await run('openssl', ['cms', '-verify', '-inform', 'DER', '-in', block, '-content', sf, '-binary',
        '-CAfile', testKey(c.key, 'matrix').certPath, '-purpose', 'any', '-out', '/dev/null']);
      expect(o.status, describeRun(o)).toBe(0);
      expect(o.stderr).toContain('Verification successful');
      // ... and refuses it against another key's certificate
      const other = c.key.startsWith('rsa') ? 'ec-p256' : 'rsa-2048';
      const w = await run('openssl', ['cms', '-verify', '-inform', 'DER', '-in', block, '-content', sf, '-binary',
        '-CAfile', testKey(other, 'matrix').certPath, '-purpose', 'any', '-out', '/dev/null']);
      expect(w.status, describeRun(w)).not.toBe(0);
    });
  }

  it('without a truststore the signature still verifies; -strict reports only the untrusted self-signed chain', async () => {
    const jar = join(work, 'untrusted.jar');
    writeFileSync(jar, readFileSync(unsignedJar));
    expect((await sign(jar, 'ec-p256')).status).toBe(0);
    const plain = await run('jarsigner', ['-verify', jar]);
    expect(plain.status, describeRun(plain)).toBe(0);
    expect(plain.stdout).toMatch(/^jar verified\.$/m);
    const strict = await run('jarsigner', ['-verify', '-strict', jar]);
    expect(strict.stdout).toMatch(/^jar verified, with signer errors\.$/m);
    expect(strict.stdout).toContain('signer certificate is self-signed');
    expect(strict.status, describeRun(strict)).toBe(4); // jarsigner: 4 = chain not validated
  });

  it('tampering with a signed entry or with the signature file makes -verify -strict fail', async () => {
    const jar = join(work, 'tamper.jar');
    writeFileSync(jar, readFileSync(unsignedJar));
    expect((await sign(jar, 'rsa-2048')).status).toBe(0);
    expect((await verifyStrict(jar)).status).toBe(0);

    const entry = join(work, 'tampered-entry.jar');
    writeFileSync(entry, readFileSync(jar));
    const evil = join(work, 'evil');
    mkdirSync(join(evil, 'META-INF'), { recursive: true });
    writeFileSync(join(evil, 'hello.txt'), 'not what was signed\n');
    await runOk('jar', ['uf', entry, '-C', evil, 'hello.txt']);
    const v1 = await verifyStrict(entry);
    expect(v1.status, describeRun(v1)).not.toBe(0);
    expect(v1.stdout + v1.stderr).toMatch(/digest error for hello\.txt/);

    const sfJar = join(work, 'tampered-sf.jar');
    writeFileSync(sfJar, readFileSync(jar));
    const { sf } = await signatureFiles(jar, 'rsa-2048', join(work, 'x2'));
    writeFileSync(join(evil, 'META-INF', 'RSA-2048.SF'), readFileSync(sf, 'utf8').replace(/^Created-By: .*$/m, 'Created-By: someone else'));
    await runOk('jar', ['uf', sfJar, '-C', evil, 'META-INF/RSA-2048.SF']);
    const v2 = await verifyStrict(sfJar);
    expect(v2.status, describeRun(v2)).not.toBe(0);
    expect(v2.stdout + v2.stderr).toMatch(/cannot verify signature block file/);
  });
});

describe('what SunPKCS11 calls (traced with OpenSC pkcs11-spy)', () => {
  it('no C_Login; CKM_SHA256_RSA_PKCS as SignInit + SignUpdate + SignFinal; every call answers CKR_OK', async () => {
    const spy = `/usr/lib/${multiarch()}/pkcs11/pkcs11-spy.so`;
    if (!existsSync(spy)) throw new Error(`${spy} is missing: run as root: apt-get install -y opensc-pkcs11`);
    const trace = join(work, 'jarsigner-trace.txt');
    const jar = join(work, 'traced.jar');
    writeFileSync(jar, readFileSync(unsignedJar));
    const s = await sign(jar, 'rsa-3072', undefined, writeConfig('spy', spy, 0), { PKCS11SPY: signbridgeModule(), PKCS11SPY_OUTPUT: trace });
    expect(s.status, describeRun(s)).toBe(0);
    const text = readFileSync(trace, 'utf8');
    const calls = [...text.matchAll(/^\d+: (C_\w+)$/gm)].map((m) => m[1]);
    expect(calls).toContain('C_GetMechanismInfo');
    expect(calls).not.toContain('C_Login'); // design.md "Login model": -storepass reaches nothing
    const signing = calls.filter((c) => c!.startsWith('C_Sign'));
    expect(signing).toEqual(['C_SignInit', 'C_SignUpdate', 'C_SignFinal']);
    expect(text).toMatch(/pMechanism->type = CKM_SHA256_RSA_PKCS\b/);
    const rvs = [...text.matchAll(/^Returned:\s+(\d+) (\w+)$/gm)].map((m) => m[2]);
    expect(rvs.length).toBe(calls.length);
    expect(new Set(rvs)).toEqual(new Set(['CKR_OK']));
  });
});

// SunPKCS11 offers RSASSA-PSS only if C_GetMechanismInfo(CKM_SHAxxx) succeeds (P11PSSSignature),
// so the module lists the digests it computes anyway and serves C_Digest* itself. Checked here
// through pkcs11js against node:crypto's hashes.
describe('the digest mechanisms the module adds for SunPKCS11 (C_Digest*, computed locally)', () => {
  const P = pkcs11js as unknown as Record<string, number>;
  const rvOf = (fn: () => unknown): number => {
    try {
      fn();
      return 0;
    } catch (e) {
      if (typeof (e as { code?: unknown }).code === 'number') return (e as { code: number }).code;
      throw e;
    }
  };
  const HASHES = [
    { ckm: P.CKM_SHA256!, name: 'sha256', len: 32 },
    { ckm: P.CKM_SHA384!, name: 'sha384', len: 48 },
    { ckm: P.CKM_SHA512!, name: 'sha512', len: 64 },
  ];
  const message = Buffer.from(Array.from({ length: 10_000 }, (_, i) => (i * 7 + 3) & 0xff));

  it('lists CKM_SHA256/384/512 with CKF_DIGEST only, and digests single- and multi-part like node:crypto', async () => {
    const mod = await openModule({ token: 'matrix', daemon }); // this suite's daemon, the module in this process
    const { p11, slot, edSlot, session: s } = mod;
    try {
      expect(edSlot).toBeDefined();
      expect(p11.C_GetMechanismList(edSlot!)).toEqual([0x1057]); // CKM_EDDSA: no hash-and-sign there, no digests
      for (const h of HASHES) {
        expect(p11.C_GetMechanismList(slot)).toContain(h.ckm);
        const info = p11.C_GetMechanismInfo(slot, h.ckm);
        expect(info.flags).toBe(P.CKF_DIGEST);
        expect([info.minKeySize, info.maxKeySize]).toEqual([0, 0]);
        const want = createHash(h.name).update(message).digest();

        p11.C_DigestInit(s, { mechanism: h.ckm });
        expect(Buffer.from(p11.C_Digest(s, message, Buffer.alloc(64)))).toEqual(want);

        p11.C_DigestInit(s, { mechanism: h.ckm });
        // uneven parts, across block boundaries
        for (let i = 0; i < message.length; i += 997) p11.C_DigestUpdate(s, message.subarray(i, i + 997));
        // short buffer: CKR_BUFFER_TOO_SMALL and the operation stays active (v2.40 §5.2)
        expect(rvOf(() => p11.C_DigestFinal(s, Buffer.alloc(h.len - 1)))).toBe(P.CKR_BUFFER_TOO_SMALL);
        expect(Buffer.from(p11.C_DigestFinal(s, Buffer.alloc(h.len)))).toEqual(want);
        expect(rvOf(() => p11.C_DigestFinal(s, Buffer.alloc(h.len)))).toBe(P.CKR_OPERATION_NOT_INITIALIZED);
      }
      // a digest mechanism does not sign; C_Digest cannot finish a multi-part digest; one op at a time
      const key = mod.privateKey('rsa-2048');
      expect(rvOf(() => p11.C_SignInit(s, { mechanism: P.CKM_SHA256! }, key))).toBe(P.CKR_MECHANISM_INVALID);
      expect(rvOf(() => p11.C_DigestInit(s, { mechanism: P.CKM_SHA_1! }))).toBe(P.CKR_MECHANISM_INVALID);
      p11.C_DigestInit(s, { mechanism: P.CKM_SHA256! });
      expect(rvOf(() => p11.C_DigestInit(s, { mechanism: P.CKM_SHA256! }))).toBe(P.CKR_OPERATION_ACTIVE);
      p11.C_DigestUpdate(s, message);
      expect(rvOf(() => p11.C_Digest(s, message, Buffer.alloc(32)))).toBe(P.CKR_OPERATION_NOT_INITIALIZED);
      expect(rvOf(() => p11.C_DigestFinal(s, Buffer.alloc(32)))).toBe(P.CKR_OPERATION_NOT_INITIALIZED); // ended above
    } finally {
      await mod.close();
    }
  });
});

// SunPKCS11 builds a key's chain by searching certificates whose CKA_SUBJECT is the issuer
// (docs/consumers.md "SunPKCS11"). A token of its own: one RSA key whose certificate is issued by a CA that is also
// stored on the backing token; the daemon serves the CA as a certificate object.
describe('a CA-issued certificate: SunPKCS11 finds the chain on the token', () => {
  let chainDaemon: RunningDaemon | undefined;
  let sockDir: string | undefined;
  afterAll(async () => {
    await chainDaemon?.stop();
    if (sockDir) rmSync(sockDir, { recursive: true, force: true });
  });

  it('keytool shows a chain of 2; jarsigner embeds it; -verify -strict trusts the jar through the CA alone', async () => {
    const dir = join(work, 'chain');
    const token = await createToken({
      stateDir: dir,
      tokenLabel: 'signbridge-java-chain',
      organization: 'signbridge tests',
      keys: [{ type: 'ec', curve: 'P-256', label: 'issued', idHex: '41' }],
    });
    const key = token.keys[0]!;
    // the CA (openssl), and the token key's certificate re-issued by it
    const caKey = join(dir, 'ca.key');
    const caPem = join(dir, 'ca.pem');
    await runOk('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', caKey, '-out', caPem,
      '-days', '30', '-subj', '/CN=signbridge java test CA/O=signbridge tests',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
    const ext = join(dir, 'leaf.cnf');
    writeFileSync(ext, '[v3]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n' +
      'subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
    const leafPem = join(dir, 'leaf.pem');
    await runOk('openssl', ['x509', '-in', key.certPath, '-CA', caPem, '-CAkey', caKey, '-set_serial', '4242', '-days', '30',
      '-clrext', '-extfile', ext, '-extensions', 'v3', '-out', leafPem]);
    await runOk('openssl', ['verify', '-CAfile', caPem, '-purpose', 'any', leafPem]);
    replaceCertificates(token, new X509Certificate(readFileSync(leafPem)).raw, new X509Certificate(readFileSync(caPem)).raw);

    sockDir = mkdtempSync(join(tmpdir(), 'sbj-')); // 0700, short path for sun_path
    chainDaemon = await startDaemon({
      socket: join(sockDir, 's.sock'), softhsmConf: token.softhsmConf, library: token.library, tokenLabel: token.tokenLabel,
      pinFile: token.pinFile, logFile: join(dir, 'daemon.log'),
    });
    const chainEnv = { SIGNBRIDGE_SOCKET: chainDaemon.socket };
    const config = writeConfig('chain', signbridgeModule(), 0);

    const l = await runOk('keytool', ['-list', '-v', '-storetype', 'PKCS11', ...PROVIDER, '-providerArg', config, '-storepass', STOREPASS,
      '-alias', 'issued'], chainEnv);
    expect(l.stdout).toMatch(/^Entry type: PrivateKeyEntry$/m);
    expect(l.stdout).toMatch(/^Certificate chain length: 2$/m);
    expect(l.stdout).toMatch(/^Issuer: O=signbridge tests, CN=signbridge java test CA$/m);

    const jar = join(work, 'chained.jar');
    writeFileSync(jar, readFileSync(unsignedJar));
    const s = await sign(jar, 'issued', undefined, config, chainEnv);
    expect(s.status, describeRun(s)).toBe(0);
    const caTrust = join(dir, 'ca-trust.p12');
    await runOk('keytool', ['-importcert', '-noprompt', '-storetype', 'PKCS12', '-keystore', caTrust, '-storepass', TRUSTPASS, '-alias', 'ca', '-file', caPem]);
    const v = await run('jarsigner', ['-verify', '-strict', '-verbose', '-certs', '-keystore', caTrust, '-storepass', TRUSTPASS, jar]);
    expect(v.status, describeRun(v)).toBe(0);
    expect(v.stdout).toMatch(/^jar verified\.$/m);
    expect(v.stdout).toContain('CN=signbridge java test CA (ca)'); // the CA certificate came from the token, via the module
  });
});

/** On the backing SoftHSMv2 token: the key's certificate becomes `leaf`, and the CA certificate is added. */
function replaceCertificates(token: Awaited<ReturnType<typeof createToken>>, leaf: Buffer, ca: Buffer): void {
  const previousConf = process.env.SOFTHSM2_CONF;
  process.env.SOFTHSM2_CONF = token.softhsmConf; // SoftHSMv2 reads it at C_Initialize
  const mod = graphene.Module.load(token.library);
  mod.initialize();
  try {
    const slots = mod.getSlots(true);
    let slot: graphene.Slot | undefined;
    for (let i = 0; i < slots.length; i++) if (slots.items(i).getToken().label.trim() === token.tokenLabel) slot = slots.items(i);
    const session = slot!.open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION);
    session.login(readFileSync(token.pinFile, 'utf8').trim(), graphene.UserType.USER);
    const id = Buffer.from(token.keys[0]!.idHex, 'hex');
    const old = session.find({ class: graphene.ObjectClass.CERTIFICATE, id });
    for (let i = 0; i < old.length; i++) old.items(i).destroy();
    const add = (der: Buffer, label: string, certId: Buffer, category: number) => {
      const c = parseCertificate(der);
      session.create({
        class: graphene.ObjectClass.CERTIFICATE, certType: graphene.CertificateType.X_509, certCategory: category, token: true, private: false,
        id: certId, label, subject: c.subjectDer, issuer: c.issuerDer, serial: c.serialDer, value: der,
      });
    };
    add(leaf, token.keys[0]!.label, id, 1); // token user
    add(ca, 'signbridge java test CA', Buffer.from('ca', 'ascii'), 2); // authority
    session.logout();
    session.close();
  } finally {
    mod.finalize();
    mod.close();
    if (previousConf === undefined) delete process.env.SOFTHSM2_CONF;
    else process.env.SOFTHSM2_CONF = previousConf;
  }
}
