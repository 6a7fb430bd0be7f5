// OpenSC pkcs11-tool → libsignbridge-pkcs11.so → signbridge daemon → SoftHSMv2 ("signbridge-matrix").
// Lists slots, objects and mechanisms, then signs with every mechanism the module advertises, with
// every key it applies to; openssl checks each signature against the public key of the key's
// certificate (and must reject it for a different message), never against signbridge's output.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { signbridgeModule } from '../helpers/module.js';
import { describeRun, runCommand } from '../helpers/run.js';
import { testToken, type TestKey } from '../helpers/token.js';
import { findSoftHsmLibrary } from '../../src/softhsm/token-setup.js';
import { publicKeyFromCert, requireCommand, signedInLog, waitFor } from '../helpers/consumer-tools.js';

type Hash = 'sha256' | 'sha384' | 'sha512';
const HASHES: Hash[] = ['sha256', 'sha384', 'sha512'];
const HLEN: Record<Hash, number> = { sha256: 32, sha384: 48, sha512: 64 };
// DER prefix of a DigestInfo (RFC 8017 §9.2 note 1): what CKM_RSA_PKCS signs for a hash-then-sign
const DIGEST_INFO: Record<Hash, string> = {
  sha256: '3031300d060960864801650304020105000420',
  sha384: '3041300d060960864801650304020205000430',
  sha512: '3051300d060960864801650304020305000440',
};
const upper = (h: Hash) => h.toUpperCase(); // pkcs11-tool spells them SHA256 …

let daemon: TestDaemon;
let work: string;
let env: NodeJS.ProcessEnv;
/**
 * Inputs for the message that is signed (good) and for another one (bad: verification must fail).
 * `msg` is 4 KiB: pkcs11-tool reads 1025 bytes, so a longer input goes through C_SignUpdate/C_SignFinal
 * (multi-part: hashed in the module, or for EDDSA buffered there — SoftHSMv2 itself refuses
 * multi-part EdDSA).
 */
interface Inputs { msg: string; digest: Record<Hash, string>; digestInfo: Record<Hash, string> }
let good: Inputs;
let bad: Inputs;
const pub: Record<string, string> = {};

function writeInputs(name: string, message: Buffer): Inputs {
  const msg = join(work, `${name}.bin`);
  writeFileSync(msg, message);
  const digest = {} as Record<Hash, string>;
  const digestInfo = {} as Record<Hash, string>;
  for (const h of HASHES) {
    const d = createHash(h).update(message).digest();
    digest[h] = join(work, `${name}.${h}`);
    writeFileSync(digest[h], d);
    digestInfo[h] = join(work, `${name}.${h}.di`);
    writeFileSync(digestInfo[h], Buffer.concat([Buffer.from(DIGEST_INFO[h], 'hex'), d]));
  }
  return { msg, digest, digestInfo };
}

function pkcs11Tool(args: string[]) {
  return runCommand('pkcs11-tool', ['--module', signbridgeModule(), ...args], { env });
}

const matrixKeys = (): TestKey[] => testToken('matrix').keys;
const key = (label: string): TestKey => matrixKeys().find((k) => k.label === label)!;

beforeAll(async () => {
  requireCommand('pkcs11-tool', 'opensc');
  requireCommand('openssl', 'openssl');
  work = mkdtempSync(join(tmpdir(), 'sb-pkcs11-tool-'));
  daemon = await startTestDaemon({ token: 'matrix', extraArgs: ['--log-level', 'debug'] });
  env = { ...process.env, ...daemon.env };
  good = writeInputs('message', Buffer.concat([Buffer.from('signbridge pkcs11-tool test\n'), randomBytes(4000)]));
  bad = writeInputs('other', Buffer.concat([Buffer.from('signbridge pkcs11-tool test\n'), randomBytes(4000)]));
  for (const k of matrixKeys()) pub[k.label] = await publicKeyFromCert(k.certPath, work, k.label);
});
afterAll(async () => {
  await daemon?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('pkcs11-tool lists what the module serves', () => {
  it('--list-slots (-L): the matrix token in slot 0, its EdDSA token in slot 1', async () => {
    const r = await pkcs11Tool(['-L']);
    expect(r.status, describeRun(r)).toBe(0);
    const slots = r.stdout.split(/^(?=Slot \d+ )/m).filter((s) => s.startsWith('Slot '));
    expect(slots, r.stdout).toHaveLength(2);
    expect(slots[0]).toMatch(/^Slot 0 \(0x0\): /);
    expect(slots[0]).toMatch(/^\s*token label\s*: signbridge-matrix$/m);
    expect(slots[0]).toMatch(new RegExp(`^\\s*serial num\\s*: ${testToken('matrix').tokenSerial}$`, 'm'));
    expect(slots[1]).toMatch(/^Slot 1 \(0x1\): /);
    expect(slots[1]).toMatch(/^\s*token label\s*: signbridge-matrix EdDSA$/m);
    // design.md "Login model": no CKF_LOGIN_REQUIRED, so pkcs11-tool never asks for a PIN
    expect(r.stdout).not.toMatch(/login required/);
  });

  it('--list-objects (-O) per slot: private key, public key and certificate of every key', async () => {
    const expected: Record<number, TestKey[]> = {
      0: matrixKeys().filter((k) => k.type !== 'ed25519'),
      1: matrixKeys().filter((k) => k.type === 'ed25519'),
    };
    for (const slot of [0, 1]) {
      const r = await pkcs11Tool(['--slot', String(slot), '-O']);
      expect(r.status, describeRun(r)).toBe(0);
      const objects = r.stdout.split(/^(?=\S)/m).filter((o) => /Object;/.test(o));
      expect(objects, r.stdout).toHaveLength(3 * expected[slot]!.length);
      for (const k of expected[slot]!) {
        const mine = objects.filter((o) => new RegExp(`^\\s*ID:\\s*${k.idHex}$`, 'm').test(o));
        expect(mine.map((o) => o.split(';')[0]).sort(), `${k.label}\n${r.stdout}`).toEqual(['Certificate Object', 'Private Key Object', 'Public Key Object']);
        for (const o of mine) expect(o).toMatch(new RegExp(`^\\s*label:\\s*${k.label}$`, 'm'));
        const kind = k.type === 'rsa' ? 'RSA' : k.type === 'ec' ? 'EC' : 'EC_EDWARDS';
        expect(mine.find((o) => o.startsWith('Private Key'))).toMatch(new RegExp(`^Private Key Object; ${kind}\\s*$`, 'm'));
        expect(mine.find((o) => o.startsWith('Private Key'))).toMatch(/^\s*Usage:\s*sign$/m);
        if (k.type === 'rsa') expect(mine.find((o) => o.startsWith('Public Key'))).toMatch(new RegExp(`RSA ${k.bits} bits`));
        expect(mine.find((o) => o.startsWith('Certificate'))).toMatch(new RegExp(`subject:\\s*DN: CN=signbridge ${k.label}, O=signbridge tests`));

        // the certificate object's value is the certificate the token holds, byte for byte
        const der = join(work, `read-${k.label}.der`);
        const c = await pkcs11Tool(['--slot', String(slot), '--read-object', '--type', 'cert', '--id', k.idHex, '-o', der]);
        expect(c.status, describeRun(c)).toBe(0);
        expect(readFileSync(der).equals(new X509Certificate(k.certPem).raw)).toBe(true);
      }
    }
  });

  it('--list-mechanisms (-M): RSA and ECDSA families in slot 0, EDDSA in slot 1', async () => {
    const slot0 = await pkcs11Tool(['--slot', '0', '-M']);
    expect(slot0.status, describeRun(slot0)).toBe(0);
    const rsa = ['RSA-PKCS', 'SHA256-RSA-PKCS', 'SHA384-RSA-PKCS', 'SHA512-RSA-PKCS', 'RSA-PKCS-PSS', 'SHA256-RSA-PKCS-PSS', 'SHA384-RSA-PKCS-PSS', 'SHA512-RSA-PKCS-PSS'];
    const ec = ['ECDSA', 'ECDSA-SHA256', 'ECDSA-SHA384', 'ECDSA-SHA512'];
    for (const m of [...rsa, ...ec]) expect(slot0.stdout, m).toMatch(new RegExp(`^\\s*${m}, keySize=\\{\\d+,\\d+\\}, .*\\bsign\\b`, 'm'));
    // RSA sizes in bits (docs/consumers.md "SunPKCS11": checks them against the key): 2048..4096 must fit
    const [, min, max] = /^\s*RSA-PKCS, keySize=\{(\d+),(\d+)\}/m.exec(slot0.stdout)!;
    expect(Number(min)).toBeLessThanOrEqual(2048);
    expect(Number(max)).toBeGreaterThanOrEqual(4096);
    expect(slot0.stdout).not.toMatch(/^\s*EDDSA/m);

    const slot1 = await pkcs11Tool(['--slot', '1', '-M']);
    expect(slot1.status, describeRun(slot1)).toBe(0);
    expect(slot1.stdout).toMatch(/^\s*EDDSA\b.*\bsign\b/m);
  });
});

// ---- signing: one row per (key, mechanism, parameters) ----
interface SignCase {
  name: string;
  key: string;
  slot?: number;
  mech: string;
  args?: string[];
  /** the file pkcs11-tool signs */
  input: (i: Inputs) => string;
  /** raw ECDSA output (r‖s) instead of --signature-format openssl */
  raw?: boolean;
  /** the signing primitive the daemon must have used (protocol.md SIGN) */
  primitive: 'CKM_RSA_PKCS' | 'CKM_RSA_PKCS_PSS' | 'CKM_ECDSA' | 'CKM_EDDSA';
  /** openssl arguments that verify `sig` over the inputs; exit 0 means verified */
  verify: (sig: string, i: Inputs, pubKey: string) => string[];
  sigLen: number;
}

function cases(): SignCase[] {
  const out: SignCase[] = [];
  const rsa = [
    { label: 'rsa-2048', id: '11', bytes: 256, hash: 'sha256' as Hash },
    { label: 'rsa-3072', id: '12', bytes: 384, hash: 'sha384' as Hash },
    { label: 'rsa-4096', id: '13', bytes: 512, hash: 'sha512' as Hash },
  ];
  for (const k of rsa) {
    const h = k.hash; // the hash for the mechanisms that take a digest; rotates over the keys
    out.push({
      name: `${k.label} RSA-PKCS (DigestInfo ${h} in)`,
      key: k.label,
      mech: 'RSA-PKCS',
      input: (i) => i.digestInfo[h],
      primitive: 'CKM_RSA_PKCS',
      // pkeyutl with digest: checks the PKCS#1 v1.5 padding and the DigestInfo around the hash
      verify: (sig, i, p) => ['pkeyutl', '-verify', '-pubin', '-inkey', p, '-in', i.digest[h], '-sigfile', sig, '-pkeyopt', `digest:${h}`],
      sigLen: k.bytes,
    });
    for (const H of HASHES) {
      out.push({
        name: `${k.label} ${upper(H)}-RSA-PKCS (message in)`,
        key: k.label,
        mech: `${upper(H)}-RSA-PKCS`,
        input: (i) => i.msg,
        primitive: 'CKM_RSA_PKCS',
        verify: (sig, i, p) => ['dgst', `-${H}`, '-verify', p, '-signature', sig, i.msg],
        sigLen: k.bytes,
      });
    }
    out.push({
      name: `${k.label} RSA-PKCS-PSS (${h} in, MGF1-${upper(h)}, salt ${HLEN[h]})`,
      key: k.label,
      mech: 'RSA-PKCS-PSS',
      args: ['--hash-algorithm', upper(h), '--mgf', `MGF1-${upper(h)}`, '--salt-len', String(HLEN[h])],
      input: (i) => i.digest[h],
      primitive: 'CKM_RSA_PKCS_PSS',
      // explicit salt length: openssl's default "auto" would accept any salt
      verify: (sig, i, p) => ['pkeyutl', '-verify', '-pubin', '-inkey', p, '-in', i.digest[h], '-sigfile', sig, '-pkeyopt', `digest:${h}`, '-pkeyopt', 'rsa_padding_mode:pss', '-pkeyopt', `rsa_pss_saltlen:${HLEN[h]}`, '-pkeyopt', `rsa_mgf1_md:${h}`],
      sigLen: k.bytes,
    });
    for (const H of HASHES) {
      // pkcs11-tool's defaults for SHAxxx-RSA-PKCS-PSS: hashAlg and MGF1 of that hash, salt = hash length
      out.push({
        name: `${k.label} ${upper(H)}-RSA-PKCS-PSS (message in)`,
        key: k.label,
        mech: `${upper(H)}-RSA-PKCS-PSS`,
        input: (i) => i.msg,
        primitive: 'CKM_RSA_PKCS_PSS',
        verify: (sig, i, p) => ['dgst', `-${H}`, '-verify', p, '-sigopt', 'rsa_padding_mode:pss', '-sigopt', `rsa_pss_saltlen:${HLEN[H]}`, '-sigopt', `rsa_mgf1_md:${H}`, '-signature', sig, i.msg],
        sigLen: k.bytes,
      });
    }
  }
  // the largest salt (emLen - hLen - 2, RFC 8017 §9.1.1): what openssl's engine asks for by default
  // (docs/consumers.md "libp11"). MGF1 uses the message hash: SoftHSMv2 2.6.1 refuses any other (CKR_ARGUMENTS_BAD).
  out.push({
    name: 'rsa-2048 RSA-PKCS-PSS (sha256 in, MGF1-SHA256, salt 222 = max)',
    key: 'rsa-2048',
    mech: 'RSA-PKCS-PSS',
    args: ['--hash-algorithm', 'SHA256', '--mgf', 'MGF1-SHA256', '--salt-len', '222'],
    input: (i) => i.digest.sha256,
    primitive: 'CKM_RSA_PKCS_PSS',
    verify: (sig, i, p) => ['pkeyutl', '-verify', '-pubin', '-inkey', p, '-in', i.digest.sha256, '-sigfile', sig, '-pkeyopt', 'digest:sha256', '-pkeyopt', 'rsa_padding_mode:pss', '-pkeyopt', 'rsa_pss_saltlen:222', '-pkeyopt', 'rsa_mgf1_md:sha256'],
    sigLen: 256,
  });

  const ec = [
    { label: 'ec-p256', field: 32, hash: 'sha256' as Hash },
    { label: 'ec-p384', field: 48, hash: 'sha384' as Hash },
  ];
  for (const k of ec) {
    const h = k.hash;
    for (const raw of [false, true]) {
      out.push({
        name: `${k.label} ECDSA (${h} in, ${raw ? 'raw r‖s' : 'DER'} out)`,
        key: k.label,
        mech: 'ECDSA',
        input: (i) => i.digest[h],
        raw,
        primitive: 'CKM_ECDSA',
        verify: (sig, i, p) => ['pkeyutl', '-verify', '-pubin', '-inkey', p, '-in', i.digest[h], '-sigfile', sig],
        sigLen: 2 * k.field,
      });
    }
    for (const H of HASHES) {
      out.push({
        name: `${k.label} ECDSA-${upper(H)} (message in, DER out)`,
        key: k.label,
        mech: `ECDSA-${upper(H)}`,
        input: (i) => i.msg,
        primitive: 'CKM_ECDSA',
        verify: (sig, i, p) => ['dgst', `-${H}`, '-verify', p, '-signature', sig, i.msg],
        sigLen: 2 * k.field,
      });
    }
    out.push({
      name: `${k.label} ECDSA-${upper(h)} (message in, raw r‖s out)`,
      key: k.label,
      mech: `ECDSA-${upper(h)}`,
      input: (i) => i.msg,
      raw: true,
      primitive: 'CKM_ECDSA',
      verify: (sig, i, p) => ['dgst', `-${h}`, '-verify', p, '-signature', sig, i.msg],
      sigLen: 2 * k.field,
    });
  }

  out.push({
    name: 'ed25519 EDDSA (slot 1, the whole message in)',
    key: 'ed25519',
    slot: 1,
    mech: 'EDDSA',
    input: (i) => i.msg,
    primitive: 'CKM_EDDSA',
    verify: (sig, i, p) => ['pkeyutl', '-verify', '-pubin', '-inkey', p, '-rawin', '-in', i.msg, '-sigfile', sig],
    sigLen: 64,
  });
  return out;
}

/** PKCS#11 ECDSA r‖s (v2.40 §2.3.1) → the DER ECDSA-Sig-Value openssl reads (RFC 3279 §2.2.3). */
function rawEcdsaToDer(raw: Buffer): Buffer {
  const int = (b: Buffer): Buffer => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    let v = b.subarray(i);
    if (v[0]! & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
    return Buffer.concat([Buffer.from([0x02, v.length]), v]);
  };
  const n = raw.length / 2;
  const body = Buffer.concat([int(raw.subarray(0, n)), int(raw.subarray(n))]);
  // P-256/P-384 bodies stay below 128 bytes: short-form length
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

describe('pkcs11-tool --sign with every mechanism, verified by openssl', () => {
  let n = 0;
  for (const c of cases()) {
    const idx = n++;
    it(c.name, async () => {
      const k = key(c.key);
      const sig = join(work, `sig-${idx}.bin`);
      const before = signedInLog(daemon.logFile, c.primitive);
      const r = await pkcs11Tool([
        ...(c.slot !== undefined ? ['--slot', String(c.slot)] : []),
        '--sign', '--id', k.idHex, '-m', c.mech, ...(c.args ?? []),
        ...(c.primitive === 'CKM_ECDSA' && !c.raw ? ['--signature-format', 'openssl'] : []),
        '-i', c.input(good), '-o', sig,
      ]);
      expect(r.status, `${describeRun(r)}\n--- daemon stderr\n${daemon.stderr()}`).toBe(0);
      expect(r.stderr).toContain(`Using signature algorithm ${c.mech}`);
      // the signature was made by the daemon (one SIGN per signature, protocol.md), not somewhere else
      expect(await waitFor(() => signedInLog(daemon.logFile, c.primitive) === before + 1), `daemon log for ${c.primitive}`).toBe(true);

      let sigFile = sig;
      const bytes = readFileSync(sig);
      if (c.primitive === 'CKM_ECDSA' && !c.raw) {
        expect(bytes[0], 'DER SEQUENCE').toBe(0x30);
      } else {
        expect(bytes.length).toBe(c.sigLen);
      }
      if (c.raw) {
        sigFile = join(work, `sig-${idx}.der`);
        writeFileSync(sigFile, rawEcdsaToDer(bytes));
      }

      const ok = await runCommand('openssl', c.verify(sigFile, good, pub[c.key]!));
      expect(ok.status, describeRun(ok)).toBe(0);
      expect(ok.stdout).toMatch(/Verified OK|Signature Verified Successfully/);
      // the same signature over a different message must not verify: the check above can fail
      const no = await runCommand('openssl', c.verify(sigFile, bad, pub[c.key]!));
      expect(no.status, describeRun(no)).not.toBe(0);
      expect(no.stdout).not.toMatch(/Verified OK|Signature Verified Successfully/);
    });
  }

  it('RSA-PKCS-PSS with an MGF1 hash other than the message hash is refused at C_SignInit (protocol.md: bad PSS parameters)', async () => {
    // SoftHSMv2 2.6.1 cannot sign it; the module says so up front instead of failing later in the token
    const r = await pkcs11Tool(['--sign', '--id', '11', '-m', 'RSA-PKCS-PSS', '--hash-algorithm', 'SHA256', '--mgf', 'MGF1-SHA1', '--salt-len', '32', '-i', good.digest.sha256, '-o', join(work, 'never-pss.bin')]);
    expect(r.status, describeRun(r)).not.toBe(0);
    expect(r.stderr).toMatch(/C_SignInit failed: rv = CKR_MECHANISM_PARAM_INVALID/);
  });

  it('a mechanism a key cannot do is refused, not silently changed (ECDSA with an RSA key)', async () => {
    const r = await pkcs11Tool(['--sign', '--id', '11', '-m', 'ECDSA', '-i', good.digest.sha256, '-o', join(work, 'never.bin')]);
    expect(r.status, describeRun(r)).not.toBe(0);
    expect(`${r.stdout}${r.stderr}`).toMatch(/CKR_(KEY_TYPE_INCONSISTENT|MECHANISM_INVALID|KEY_FUNCTION_NOT_PERMITTED)/);
  });
});

// OpenSC 0.23 loads a module through C_GetInterface("PKCS 11", NULL) when it exports one
// (libpkcs11.c), so pkcs11-tool drives the default interface: PKCS#11 3.0. pkcs11-spy, loaded as the
// module in between, loads the real one the same way and logs "[compat]" in C_GetInterface when
// the module had no 3.0 interface to hand over — as it does in front of SoftHSMv2 2.6 (2.40 only).
describe('pkcs11-tool through pkcs11-spy picks the PKCS#11 3.0 interface', () => {
  const arch = process.arch === 'arm64' ? 'aarch64' : 'x86_64';
  const spyCandidates = [`/usr/lib/${arch}-linux-gnu/pkcs11-spy.so`, `/usr/lib/${arch}-linux-gnu/pkcs11/pkcs11-spy.so`];
  function spyModule(): string {
    const found = spyCandidates.find((p) => existsSync(p));
    if (!found) throw new Error(`pkcs11-spy.so not found (tried ${spyCandidates.join(', ')}): run as root \`apt-get install -y opensc\``);
    return found;
  }
  async function traced(module: string, name: string, args: string[]) {
    const log = join(work, `${name}.spy.log`);
    const r = await runCommand('pkcs11-tool', ['--module', spyModule(), ...args],
      { env: { ...env, PKCS11SPY: module, PKCS11SPY_OUTPUT: log } });
    return { r, trace: readFileSync(log, 'utf8') };
  }
  /** The spy's first logged call, up to its return line. */
  const firstCall = (trace: string) => /^0: (C_\w+)\n([\s\S]*?)^Returned:\s+(\d+) (\w+)$/m.exec(trace);

  it('lists and signs through the 3.0 interface, and the signature verifies', async () => {
    const list = await traced(signbridgeModule(), 'list', ['-L']);
    expect(list.r.status, describeRun(list.r)).toBe(0);
    expect(list.r.stdout).toMatch(/token label\s*: signbridge-matrix$/m);

    const k = key('ec-p256');
    const sig = join(work, 'spy-ec.sig');
    const { r, trace } = await traced(signbridgeModule(), 'sign', ['--slot', '0', '-s', '-m', 'ECDSA-SHA256', '--id', k.idHex,
      '--signature-format', 'openssl', '-i', good.msg, '-o', sig]);
    expect(r.status, describeRun(r)).toBe(0);
    const v = await runCommand('openssl', ['dgst', '-sha256', '-verify', pub[k.label]!, '-signature', sig, good.msg]);
    expect(v.status, describeRun(v)).toBe(0);

    for (const t of [list.trace, trace]) {
      const first = firstCall(t);
      expect(first, t.slice(0, 2000)).not.toBeNull();
      expect(first![1]).toBe('C_GetInterface');
      expect(first![2]).toMatch(/PKCS 11/);
      expect(first![2]).toMatch(/\[in\] pVersion = NULL/); // "the default": 3.0
      expect(first![2]).not.toMatch(/\[compat\]/);
      expect(first![4]).toBe('CKR_OK');
    }
    expect(trace).toMatch(/^\d+: C_SignFinal\n[\s\S]*?^Returned:\s+0 CKR_OK$/m);
  });

  it('control: in front of a 2.40-only module (SoftHSMv2) the spy logs [compat]', async () => {
    const { trace } = await traced(findSoftHsmLibrary(), 'softhsm', ['-L']);
    const first = firstCall(trace);
    expect(first?.[1], trace.slice(0, 2000)).toBe('C_GetInterface');
    expect(first![2]).toMatch(/\[compat\]/);
  });
});
