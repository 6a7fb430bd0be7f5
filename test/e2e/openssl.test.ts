// openssl (3.0) with the libp11 engine (libengine-pkcs11-openssl 0.4.12) → libsignbridge-pkcs11.so →
// signbridge daemon → SoftHSMv2 ("signbridge-matrix"). Signs with `openssl pkeyutl` and `openssl dgst`
// through pkcs11: URIs, creates a self-signed certificate and a CSR with bridged keys; plain openssl
// (no engine) verifies everything against the public key of the key's certificate.
// The OpenSSL 3 provider form (pkcs11-provider) is tested in openssl-provider.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { libp11Engine, signbridgeModule } from '../helpers/module.js';
import { describeRun, runCommand, type RunResult } from '../helpers/run.js';
import { testToken } from '../helpers/token.js';
import { pkcs11Spy, publicKeyFromCert, requireCommand, runOk, signedInLog, waitFor } from '../helpers/consumer-tools.js';

type Hash = 'sha256' | 'sha384' | 'sha512';
const TOKEN = 'signbridge-matrix';
const uri = (label: string) => `pkcs11:token=${TOKEN};object=${label};type=private`;

let daemon: TestDaemon;
let work: string;
let engineConf: string;
/** what a user's shell has: the daemon's socket and OPENSSL_CONF pointing at the engine config */
let engineEnv: NodeJS.ProcessEnv;
/** plain openssl for verifying: no engine config, no module */
let plainEnv: NodeJS.ProcessEnv;
const pub: Record<string, string> = {};
let msg: string;
let otherMsg: string;
const digest: Record<string, string> = {};
const otherDigest: Record<string, string> = {};

/** The openssl config the recipe shows: load libp11 by path and point it at the signbridge module. */
function writeEngineConf(file: string, modulePath: string): string {
  writeFileSync(
    file,
    [
      'openssl_conf = openssl_init',
      '[openssl_init]',
      'engines = engine_section',
      '[engine_section]',
      'pkcs11 = pkcs11_section',
      '[pkcs11_section]',
      'engine_id = pkcs11',
      `dynamic_path = ${libp11Engine()}`,
      `MODULE_PATH = ${modulePath}`,
      'init = 0',
      '',
    ].join('\n'),
  );
  return file;
}

/** openssl through the engine; stdin is closed, so a PIN prompt would fail the command. */
function withEngine(args: string[], env = engineEnv): Promise<RunResult> {
  return runCommand('openssl', args, { env });
}
const plain = (args: string[]) => runCommand('openssl', args, { env: plainEnv });

function verified(r: RunResult): boolean {
  return r.status === 0 && /Verified OK|Signature Verified Successfully|verify OK|: OK$/m.test(r.stdout + r.stderr);
}

beforeAll(async () => {
  requireCommand('openssl', 'openssl');
  libp11Engine(); // throws with the apt-get line when libengine-pkcs11-openssl is missing
  work = mkdtempSync(join(tmpdir(), 'sb-openssl-'));
  daemon = await startTestDaemon({ token: 'matrix', extraArgs: ['--log-level', 'debug'] });
  engineConf = writeEngineConf(join(work, 'engine.cnf'), signbridgeModule());
  plainEnv = { ...process.env };
  for (const v of ['OPENSSL_CONF', 'PKCS11_MODULE_PATH', 'OPENSSL_ENGINES']) delete plainEnv[v];
  engineEnv = { ...plainEnv, ...daemon.env, OPENSSL_CONF: engineConf };
  const m = Buffer.concat([Buffer.from('signbridge openssl test\n'), randomBytes(3000)]);
  const o = Buffer.concat([Buffer.from('signbridge openssl test\n'), randomBytes(3000)]);
  msg = join(work, 'message.bin');
  otherMsg = join(work, 'other.bin');
  writeFileSync(msg, m);
  writeFileSync(otherMsg, o);
  for (const h of ['sha256', 'sha384', 'sha512'] as Hash[]) {
    digest[h] = join(work, `message.${h}`);
    writeFileSync(digest[h], createHash(h).update(m).digest());
    otherDigest[h] = join(work, `other.${h}`);
    writeFileSync(otherDigest[h], createHash(h).update(o).digest());
  }
  for (const k of testToken('matrix').keys) pub[k.label] = await publicKeyFromCert(k.certPath, work, k.label);
});
afterAll(async () => {
  await daemon?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Expects one more "signed" entry for `primitive` in the daemon's log than `before`. */
async function expectSignedByDaemon(primitive: string, before: number): Promise<void> {
  expect(await waitFor(() => signedInLog(daemon.logFile, primitive) > before), `daemon log has a ${primitive} signature`).toBe(true);
}

describe('openssl pkeyutl -sign through the libp11 engine', () => {
  const cases: { label: string; hash: Hash; pss?: boolean; primitive: string }[] = [
    { label: 'rsa-2048', hash: 'sha256', primitive: 'CKM_RSA_PKCS' },
    { label: 'rsa-3072', hash: 'sha384', primitive: 'CKM_RSA_PKCS' },
    { label: 'rsa-4096', hash: 'sha512', primitive: 'CKM_RSA_PKCS' },
    { label: 'rsa-3072', hash: 'sha256', pss: true, primitive: 'CKM_RSA_PKCS_PSS' },
    { label: 'ec-p256', hash: 'sha256', primitive: 'CKM_ECDSA' },
    { label: 'ec-p384', hash: 'sha384', primitive: 'CKM_ECDSA' },
  ];
  for (const c of cases) {
    it(`${c.label}${c.pss ? ' RSA-PSS' : ''}: signs a ${c.hash} digest; openssl pkeyutl -verify with the certificate's key`, async () => {
      const sig = join(work, `pkeyutl-${c.label}-${c.hash}${c.pss ? '-pss' : ''}.sig`);
      // salt = digest length for PSS (openssl's signing default would be "max", see dgst below)
      const opts = ['-pkeyopt', `digest:${c.hash}`, ...(c.pss ? ['-pkeyopt', 'rsa_padding_mode:pss', '-pkeyopt', 'rsa_pss_saltlen:digest'] : [])];
      const before = signedInLog(daemon.logFile, c.primitive);
      const s = await withEngine(['pkeyutl', '-engine', 'pkcs11', '-keyform', 'engine', '-inkey', uri(c.label), '-sign', '-in', digest[c.hash]!, '-out', sig, ...opts]);
      expect(s.status, `${describeRun(s)}\n--- daemon stderr\n${daemon.stderr()}`).toBe(0);
      await expectSignedByDaemon(c.primitive, before);

      const verifyArgs = (d: string) => ['pkeyutl', '-verify', '-pubin', '-inkey', pub[c.label]!, '-in', d, '-sigfile', sig, ...opts];
      const v = await plain(verifyArgs(digest[c.hash]!));
      expect(verified(v), describeRun(v)).toBe(true);
      // the same check over another message's digest must fail: the verifier really verifies
      expect(verified(await plain(verifyArgs(otherDigest[c.hash]!)))).toBe(false);
      // and a hash-then-sign verifier over the message itself agrees (PKCS#1 v1.5 and ECDSA)
      if (!c.pss) expect(verified(await plain(['dgst', `-${c.hash}`, '-verify', pub[c.label]!, '-signature', sig, msg]))).toBe(true);
    });
  }

  it('also finds the module through PKCS11_MODULE_PATH, without a config file', async () => {
    const sig = join(work, 'pkeyutl-env.sig');
    const env = { ...plainEnv, ...daemon.env, PKCS11_MODULE_PATH: signbridgeModule() };
    const s = await withEngine(['pkeyutl', '-engine', 'pkcs11', '-keyform', 'engine', '-inkey', uri('rsa-3072'), '-sign', '-in', digest.sha256!, '-out', sig, '-pkeyopt', 'digest:sha256'], env);
    expect(s.status, describeRun(s)).toBe(0);
    const v = await plain(['pkeyutl', '-verify', '-pubin', '-inkey', pub['rsa-3072']!, '-in', digest.sha256!, '-sigfile', sig, '-pkeyopt', 'digest:sha256']);
    expect(verified(v), describeRun(v)).toBe(true);
  });
});

describe('openssl dgst -sign through the libp11 engine', () => {
  const cases: { label: string; hash: Hash; primitive: string }[] = [
    { label: 'rsa-2048', hash: 'sha256', primitive: 'CKM_RSA_PKCS' },
    { label: 'rsa-3072', hash: 'sha384', primitive: 'CKM_RSA_PKCS' },
    { label: 'rsa-4096', hash: 'sha512', primitive: 'CKM_RSA_PKCS' },
    { label: 'ec-p256', hash: 'sha256', primitive: 'CKM_ECDSA' },
    { label: 'ec-p384', hash: 'sha384', primitive: 'CKM_ECDSA' },
    { label: 'ec-p384', hash: 'sha512', primitive: 'CKM_ECDSA' },
  ];
  for (const c of cases) {
    it(`${c.label} -${c.hash}: openssl dgst -verify with the certificate's key`, async () => {
      const sig = join(work, `dgst-${c.label}-${c.hash}.sig`);
      const before = signedInLog(daemon.logFile, c.primitive);
      const s = await withEngine(['dgst', `-${c.hash}`, '-engine', 'pkcs11', '-keyform', 'engine', '-sign', uri(c.label), '-out', sig, msg]);
      expect(s.status, `${describeRun(s)}\n--- daemon stderr\n${daemon.stderr()}`).toBe(0);
      await expectSignedByDaemon(c.primitive, before);
      const v = await plain(['dgst', `-${c.hash}`, '-verify', pub[c.label]!, '-signature', sig, msg]);
      expect(v.stdout, describeRun(v)).toMatch(/^Verified OK$/m);
      expect(verified(await plain(['dgst', `-${c.hash}`, '-verify', pub[c.label]!, '-signature', sig, otherMsg]))).toBe(false);
    });
  }

  it('rsa-2048 RSA-PSS (-sigopt rsa_padding_mode:pss): openssl asks for the largest salt, and it verifies as such', async () => {
    const sig = join(work, 'dgst-pss.sig');
    const before = signedInLog(daemon.logFile, 'CKM_RSA_PKCS_PSS');
    const s = await withEngine(['dgst', '-sha256', '-engine', 'pkcs11', '-keyform', 'engine', '-sign', uri('rsa-2048'), '-sigopt', 'rsa_padding_mode:pss', '-out', sig, msg]);
    expect(s.status, `${describeRun(s)}\n--- daemon stderr\n${daemon.stderr()}`).toBe(0);
    await expectSignedByDaemon('CKM_RSA_PKCS_PSS', before);
    // strict salt checks: "max" (256 − 32 − 2 = 222 bytes) verifies, a digest-length salt does not
    const pss = (saltlen: string) => ['dgst', '-sha256', '-verify', pub['rsa-2048']!, '-sigopt', 'rsa_padding_mode:pss', '-sigopt', `rsa_pss_saltlen:${saltlen}`, '-signature', sig, msg];
    const v = await plain(pss('max'));
    expect(v.stdout, describeRun(v)).toMatch(/^Verified OK$/m);
    expect(verified(await plain(pss('digest')))).toBe(false);
  });
});

describe('libp11 and the EdDSA slot (docs/consumers.md "libp11": an Ed25519 key breaks libp11 0.4.12 lookups on its token)', () => {
  it('the module serves an Ed25519 key in slot 1, and libp11 still finds the RSA and EC keys of token signbridge-matrix', async () => {
    // the Ed25519 key is there, in the same module, on a token of its own
    const o = await runOk('pkcs11-tool', ['--module', signbridgeModule(), '--slot', '1', '-O'], { ...process.env, ...daemon.env });
    expect(o.stdout).toMatch(/^Private Key Object; EC_EDWARDS/m);
    // lookups by token label, and without one (libp11 then walks every slot, slot 1 included)
    for (const u of [uri('rsa-3072'), uri('ec-p256'), 'pkcs11:object=rsa-2048;type=private', 'pkcs11:object=ec-p384;type=private']) {
      const label = /object=([^;]+)/.exec(u)![1]!;
      const sig = join(work, `lookup-${label}.sig`);
      const s = await withEngine(['dgst', '-sha256', '-engine', 'pkcs11', '-keyform', 'engine', '-sign', u, '-out', sig, msg]);
      expect(s.status, describeRun(s)).toBe(0);
      expect(s.stderr).not.toMatch(/object not found|Unable to enumerate/);
      const v = await plain(['dgst', '-sha256', '-verify', pub[label]!, '-signature', sig, msg]);
      expect(v.stdout, `${u}\n${describeRun(v)}`).toMatch(/^Verified OK$/m);
    }
  });
});

describe('login model (design.md): libp11 signs without a PIN', () => {
  it('pkcs11-spy shows no C_Login, a token without CKF_LOGIN_REQUIRED, and one C_Sign', async () => {
    const trace = join(work, 'spy.txt');
    const spyConf = writeEngineConf(join(work, 'spy.cnf'), pkcs11Spy());
    const env = { ...engineEnv, OPENSSL_CONF: spyConf, PKCS11SPY: signbridgeModule(), PKCS11SPY_OUTPUT: trace };
    const sig = join(work, 'spy.sig');
    const s = await withEngine(['pkeyutl', '-engine', 'pkcs11', '-keyform', 'engine', '-inkey', uri('rsa-3072'), '-sign', '-in', digest.sha256!, '-out', sig, '-pkeyopt', 'digest:sha256'], env);
    expect(s.status, describeRun(s)).toBe(0);
    const calls = readFileSync(trace, 'utf8');
    expect(calls).toMatch(/^\d+: C_Sign$/m);
    expect(calls).not.toMatch(/^\d+: C_Login/m);
    expect(calls).toMatch(/label:\s+'signbridge-matrix\s+'/);
    expect(calls).not.toMatch(/CKF_LOGIN_REQUIRED/);
    const v = await plain(['pkeyutl', '-verify', '-pubin', '-inkey', pub['rsa-3072']!, '-in', digest.sha256!, '-sigfile', sig, '-pkeyopt', 'digest:sha256']);
    expect(verified(v), describeRun(v)).toBe(true);
  });
});

describe('openssl req with a bridged key', () => {
  /** The SubjectPublicKeyInfo of a certificate or CSR, as openssl prints it. */
  async function pubkeyOf(kind: 'x509' | 'req', file: string): Promise<string> {
    return (await runOk('openssl', [kind, '-in', file, '-noout', '-pubkey'], plainEnv)).stdout;
  }
  /** A copy of a PEM certificate/CSR with one byte of its signature flipped. */
  async function tampered(kind: 'x509' | 'req', file: string): Promise<string> {
    const der = join(work, `${kind}-tampered.der`);
    await runOk('openssl', [kind, '-in', file, '-outform', 'DER', '-out', der], plainEnv);
    const b = readFileSync(der);
    b[b.length - 1] = b[b.length - 1]! ^ 0x01; // the signature BIT STRING ends the structure
    writeFileSync(der, b);
    const pem = join(work, `${kind}-tampered.pem`);
    await runOk('openssl', [kind, '-inform', 'DER', '-in', der, '-out', pem], plainEnv);
    return pem;
  }

  const cases: { label: string; hash: Hash; sigAlg: RegExp; primitive: string }[] = [
    { label: 'rsa-3072', hash: 'sha256', sigAlg: /sha256WithRSAEncryption/, primitive: 'CKM_RSA_PKCS' },
    { label: 'ec-p384', hash: 'sha384', sigAlg: /ecdsa-with-SHA384/, primitive: 'CKM_ECDSA' },
  ];
  for (const c of cases) {
    it(`req -new -x509 with ${c.label}: a self-signed certificate whose signature and key check out`, async () => {
      const cert = join(work, `self-${c.label}.pem`);
      const before = signedInLog(daemon.logFile, c.primitive);
      const s = await withEngine([
        'req', '-new', '-x509', '-engine', 'pkcs11', '-keyform', 'engine', '-key', uri(c.label), `-${c.hash}`,
        '-subj', `/CN=bridged ${c.label}/O=signbridge tests`, '-days', '30',
        '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'keyUsage=critical,digitalSignature', '-addext', 'extendedKeyUsage=codeSigning',
        '-out', cert,
      ]);
      expect(s.status, `${describeRun(s)}\n--- daemon stderr\n${daemon.stderr()}`).toBe(0);
      await expectSignedByDaemon(c.primitive, before);

      const text = (await runOk('openssl', ['x509', '-in', cert, '-noout', '-text'], plainEnv)).stdout;
      expect(text).toMatch(new RegExp(`Subject: CN = bridged ${c.label}, O = signbridge tests`));
      expect(text).toMatch(c.sigAlg);
      expect(text).toMatch(/Code Signing/);
      // the certificate carries the token key's public key (the one in the key's own certificate)
      expect(await pubkeyOf('x509', cert)).toBe(readFileSync(pub[c.label]!, 'utf8'));
      // -check_ss_sig: openssl verify checks the self-signature of a trusted root only when asked
      const v = await plain(['verify', '-check_ss_sig', '-CAfile', cert, cert]);
      expect(v.stdout, describeRun(v)).toMatch(/: OK$/m);
      const bad = await tampered('x509', cert);
      const vb = await plain(['verify', '-check_ss_sig', '-CAfile', bad, bad]);
      expect(verified(vb), describeRun(vb)).toBe(false);
    });
  }

  const csrCases: { label: string; hash: Hash; sigAlg: RegExp; primitive: string }[] = [
    { label: 'rsa-2048', hash: 'sha384', sigAlg: /sha384WithRSAEncryption/, primitive: 'CKM_RSA_PKCS' },
    { label: 'ec-p256', hash: 'sha256', sigAlg: /ecdsa-with-SHA256/, primitive: 'CKM_ECDSA' },
  ];
  for (const c of csrCases) {
    it(`req -new (CSR) with ${c.label}: openssl req -verify accepts it and it carries the token key`, async () => {
      const csr = join(work, `csr-${c.label}.pem`);
      const before = signedInLog(daemon.logFile, c.primitive);
      const s = await withEngine(['req', '-new', '-engine', 'pkcs11', '-keyform', 'engine', '-key', uri(c.label), `-${c.hash}`, '-subj', `/CN=csr ${c.label}/O=signbridge tests`, '-out', csr]);
      expect(s.status, `${describeRun(s)}\n--- daemon stderr\n${daemon.stderr()}`).toBe(0);
      await expectSignedByDaemon(c.primitive, before);

      const v = await plain(['req', '-in', csr, '-noout', '-verify']);
      expect(`${v.stdout}${v.stderr}`, describeRun(v)).toMatch(/verify OK/);
      expect(v.status).toBe(0);
      const text = (await runOk('openssl', ['req', '-in', csr, '-noout', '-text'], plainEnv)).stdout;
      expect(text).toMatch(new RegExp(`Subject: CN = csr ${c.label}, O = signbridge tests`));
      expect(text).toMatch(c.sigAlg);
      expect(await pubkeyOf('req', csr)).toBe(readFileSync(pub[c.label]!, 'utf8'));
      // OpenSSL 3.0's `req -verify` exits 0 even on a bad signature: only its message tells
      const vb = await plain(['req', '-in', await tampered('req', csr), '-noout', '-verify']);
      expect(`${vb.stdout}${vb.stderr}`, describeRun(vb)).toMatch(/verify failure/);
      expect(`${vb.stdout}${vb.stderr}`).not.toMatch(/verify OK/);
    });
  }
});
