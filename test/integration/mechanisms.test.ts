// The full mechanism set (docs/mechanisms.md) through the module, loaded by pkcs11js in this test
// process, against a real daemon serving the "matrix" SoftHSMv2 token (RSA 2048/3072/4096, P-256,
// P-384, Ed25519). Table-driven over every key × every mechanism it allows; single-part and, for the
// hash-and-sign mechanisms, multi-part. Every signature is verified with node:crypto against the
// key's certificate (test/helpers/signing.ts), never against signbridge's own output.
// The raw C ABI part (NULL output buffer → length, per key × mechanism) is test/native/mechanisms.c.
import { execFileSync, spawnSync } from 'node:child_process';
import { constants, createHash, verify as cryptoVerify } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestDaemon } from '../helpers/daemon.js';
import { openModule, type ModuleFixture } from '../helpers/module-fixture.js';
import { signbridgeModule } from '../helpers/module.js';
import {
  CKF_EC_F_P, CKF_EC_NAMEDCURVE, CKF_EC_UNCOMPRESS, CKG_MGF1, CKK_EC_EDWARDS, CKM_EDDSA, CKM_HASH, HASHES, HASH_LEN, MECHANISMS, type Hash, type MechCase,
  decodeUlongArray, digest, maxPssSalt, mechName, mechanism, mechanismsOf, pssParams, pssParamsBuffer,
  publicKey, signInput, signatureLength, verifies,
} from '../helpers/signing.js';
import { testToken, type TestKey } from '../helpers/token.js';

const token = testToken('matrix');
const EDDSA_TOKEN = `${token.tokenLabel} EdDSA`;
const keys = token.keys;
const rsaKeys = keys.filter((k) => k.type === 'rsa');
const ecKeys = keys.filter((k) => k.type === 'ec');
const edKey = keys.find((k) => k.type === 'ed25519')!;
const FAMILY_OF: Record<TestKey['type'], MechCase['family']> = { rsa: 'rsa', ec: 'ec', ed25519: 'ed25519' };
const ALL_RSA_EC = [...mechanismsOf('rsa'), ...mechanismsOf('ec')].map((m) => m.ckm);

// Long enough to cross SHA-512's 128-byte blocks several times; chunks below split it unevenly.
const message = Buffer.from('signbridge mechanism matrix: ' + 'Lorem ipsum dolor sit amet. '.repeat(40));

let mod: ModuleFixture;
let daemon: TestDaemon;
let p11: pkcs11js.PKCS11;
let mainSlot: Buffer;
let edSlot: Buffer;
const keyHandles = new Map<string, Buffer>(); // key label → private key handle

function ckrOf(fn: () => unknown): number | 'ok' {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (e instanceof pkcs11js.Pkcs11Error) return e.code;
    throw e;
  }
}

function expectCkr(fn: () => unknown, name: keyof typeof pkcs11js, what = ''): void {
  const rv = ckrOf(fn);
  const want = pkcs11js[name] as number;
  expect(rv === 'ok' ? 'CKR_OK' : `0x${rv.toString(16)}`, `${what} → ${String(name)} (0x${want.toString(16)})`).toBe(
    `0x${want.toString(16)}`,
  );
}

function sessionFor(k: TestKey): Buffer {
  return mod.sessionFor(k);
}

function keyOf(k: TestKey): Buffer {
  return keyHandles.get(k.label)!;
}

function signOnce(k: TestKey, mech: pkcs11js.Mechanism, data: Buffer): Buffer {
  const s = sessionFor(k);
  p11.C_SignInit(s, mech, keyOf(k));
  return p11.C_Sign(s, data, Buffer.alloc(1024));
}

function signParts(k: TestKey, mech: pkcs11js.Mechanism, parts: Buffer[]): Buffer {
  const s = sessionFor(k);
  p11.C_SignInit(s, mech, keyOf(k));
  for (const part of parts) p11.C_SignUpdate(s, part);
  return p11.C_SignFinal(s, Buffer.alloc(1024));
}

// Several chunks, one of them empty, boundaries not on a hash block.
const CHUNKS = [message.subarray(0, 1), message.subarray(1, 1), message.subarray(1, 200), message.subarray(200, 333), message.subarray(333)];

/** Ends whatever operation a failed test may have left on a session (C_Sign with a bad length ends it). */
function reset(s: Buffer): void {
  ckrOf(() => p11.C_Sign(s, Buffer.alloc(0), Buffer.alloc(1024)));
}

beforeAll(async () => {
  mod = await openModule({ token: 'matrix' });
  ({ daemon, p11, slot: mainSlot } = mod);
  edSlot = mod.edSlot!; // checked by the first test
  for (const k of keys) keyHandles.set(k.label, mod.privateKey(k.label));
});

afterAll(() => mod?.close());

describe('mechanism list and info (C_GetMechanismList / C_GetMechanismInfo)', () => {
  it('serves the RSA/EC keys and the Ed25519 key from two slots', () => {
    expect(mainSlot, `a slot with token "${token.tokenLabel}"`).toBeDefined();
    expect(edSlot, `a slot with token "${EDDSA_TOKEN}"`).toBeDefined();
  });

  // The signing mechanisms (CKF_SIGN) are exactly these; a slot may list others (e.g. CKM_SHA256
  // for C_Digest) as long as they do not claim to sign or verify.
  it('slot 0 signs with exactly the RSA and EC mechanisms; the EdDSA slot exactly with CKM_EDDSA', () => {
    const signing = (slot: Buffer) => {
      const out: string[] = [];
      for (const t of p11.C_GetMechanismList(slot)) {
        const { flags } = p11.C_GetMechanismInfo(slot, t);
        if (flags & pkcs11js.CKF_SIGN) out.push(mechName(t));
        else expect(flags & (pkcs11js.CKF_VERIFY | pkcs11js.CKF_SIGN_RECOVER), `${mechName(t)} flags 0x${flags.toString(16)}`).toBe(0);
      }
      return out.sort();
    };
    expect(signing(mainSlot)).toEqual(ALL_RSA_EC.map(mechName).sort());
    expect(signing(edSlot)).toEqual(['CKM_EDDSA']);
  });

  it('reports sizes in bits, exactly the smallest and largest key served, and flags exactly CKF_SIGN (+ the EC curve flags)', () => {
    const EC_FLAGS = pkcs11js.CKF_SIGN | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;
    for (const m of MECHANISMS) {
      const slot = m.family === 'ed25519' ? edSlot : mainSlot;
      const info = p11.C_GetMechanismInfo(slot, m.ckm);
      const want = m.family === 'ec' ? EC_FLAGS : pkcs11js.CKF_SIGN;
      expect(`0x${info.flags.toString(16)}`, `${m.name} flags`).toBe(`0x${want.toString(16)}`);
      const sizes = m.family === 'rsa' ? [2048, 3072, 4096] : m.family === 'ec' ? [256, 384] : [256];
      // docs/mechanisms.md "Slots and C_GetMechanismInfo": the served keys' range, no wider
      expect([info.minKeySize, info.maxKeySize], `${m.name} sizes`).toEqual([Math.min(...sizes), Math.max(...sizes)]);
    }
  });

  it('a mechanism of the other slot, or none we offer, is CKR_MECHANISM_INVALID', () => {
    expectCkr(() => p11.C_GetMechanismInfo(mainSlot, CKM_EDDSA), 'CKR_MECHANISM_INVALID', 'EdDSA on slot 0');
    expectCkr(() => p11.C_GetMechanismInfo(edSlot, pkcs11js.CKM_RSA_PKCS), 'CKR_MECHANISM_INVALID', 'RSA on the EdDSA slot');
    expectCkr(() => p11.C_GetMechanismInfo(mainSlot, pkcs11js.CKM_SHA1_RSA_PKCS), 'CKR_MECHANISM_INVALID', 'SHA1_RSA_PKCS');
    expectCkr(() => p11.C_GetMechanismInfo(mainSlot, pkcs11js.CKM_RSA_X_509), 'CKR_MECHANISM_INVALID', 'RSA_X_509');
  });
});

describe('keys: CKA_ALLOWED_MECHANISMS and CKA_KEY_TYPE', () => {
  for (const k of keys) {
    it(`${k.label}: allows exactly its family's mechanisms, and each of them starts`, () => {
      const s = sessionFor(k);
      const [allowed, keyType] = p11.C_GetAttributeValue(s, keyOf(k), [
        { type: pkcs11js.CKA_ALLOWED_MECHANISMS },
        { type: pkcs11js.CKA_KEY_TYPE },
      ]).map((a) => a.value as Buffer);
      const want = mechanismsOf(FAMILY_OF[k.type]);
      expect(decodeUlongArray(allowed!).map(mechName).sort()).toEqual(want.map((m) => m.name).sort());
      const kt = { rsa: pkcs11js.CKK_RSA, ec: pkcs11js.CKK_EC, ed25519: CKK_EC_EDWARDS }[k.type];
      expect(Number(keyType!.readBigUInt64LE())).toBe(kt);
      // "matches what works": each allowed mechanism initialises (the signatures are checked below)
      for (const m of want) {
        expect(ckrOf(() => p11.C_SignInit(s, mechanism(m, m.hash ?? 'sha256'), keyOf(k))), m.name).toBe('ok');
        reset(s);
      }
    });
  }
});

describe('signatures, verified with node:crypto', () => {
  for (const k of keys) {
    const pub = () => publicKey(k);
    for (const m of mechanismsOf(FAMILY_OF[k.type])) {
      // raw mechanisms (DigestInfo or hash in) are tried with each hash; the others carry their own
      const hashes: Hash[] = m.hash ? [m.hash] : m.family === 'ed25519' ? ['sha256'] : [...HASHES];
      for (const h of hashes) {
        const what = m.hash || m.family === 'ed25519' ? `${k.label} ${m.name}` : `${k.label} ${m.name} over ${h}`;
        it(`${what}: single-part${m.multipart ? ' and multi-part' : ''}`, () => {
          const sig = signOnce(k, mechanism(m, h), signInput(m, h, message));
          expect(sig.length, 'signature length').toBe(signatureLength(k));
          expect(verifies(pub(), m, h, message, sig), 'single-part verifies').toBe(true);
          // the verifier can say no: same signature, other message
          expect(verifies(pub(), m, h, Buffer.from('another message'), sig)).toBe(false);
          if (m.multipart) {
            const multi = signParts(k, mechanism(m, h), CHUNKS);
            expect(multi.length).toBe(signatureLength(k));
            expect(verifies(pub(), m, h, message, multi), 'multi-part verifies').toBe(true);
            // one C_SignUpdate with everything, and an empty message
            expect(verifies(pub(), m, h, message, signParts(k, mechanism(m, h), [message]))).toBe(true);
            expect(verifies(pub(), m, h, Buffer.alloc(0), signParts(k, mechanism(m, h), [Buffer.alloc(0)]))).toBe(true);
          } else {
            // single-part only (v2.40 §2.1 / §2.3 mechanism tables, footnote 2; SoftHSMv2 does the
            // same): C_SignUpdate ends the operation with CKR_OPERATION_NOT_INITIALIZED
            const s = sessionFor(k);
            p11.C_SignInit(s, mechanism(m, h), keyOf(k));
            expectCkr(() => p11.C_SignUpdate(s, signInput(m, h, message)), 'CKR_OPERATION_NOT_INITIALIZED', 'C_SignUpdate');
            expectCkr(() => p11.C_Sign(s, signInput(m, h, message), Buffer.alloc(1024)), 'CKR_OPERATION_NOT_INITIALIZED', 'C_Sign after');
          }
        });
      }
    }
  }

  it('CKM_EDDSA signs the whole message: empty, one byte and 64 KiB', () => {
    const m = MECHANISMS.find((x) => x.ckm === CKM_EDDSA)!;
    for (const msg of [Buffer.alloc(0), Buffer.from('x'), Buffer.alloc(65536, 0x5a)]) {
      const sig = signOnce(edKey, { mechanism: CKM_EDDSA }, msg);
      expect(sig.length).toBe(64);
      expect(verifies(publicKey(edKey), m, 'sha256', msg, sig)).toBe(true);
    }
  });

  it('CKM_ECDSA output is fixed-length r‖s even when r or s has leading zero bytes', () => {
    // Over 64 signatures per curve, r or s starts with a 0x00 byte with probability ≈ 1 − (255/256)^128 ≈ 39%;
    // a DER or trimmed encoding would show as a short signature.
    const m = MECHANISMS.find((x) => x.ckm === pkcs11js.CKM_ECDSA)!;
    for (const k of ecKeys) {
      for (let i = 0; i < 64; i++) {
        const msg = Buffer.from(`ecdsa length ${i}`);
        const sig = signOnce(k, { mechanism: pkcs11js.CKM_ECDSA }, digest('sha256', msg));
        expect(sig.length).toBe(signatureLength(k));
        expect(verifies(publicKey(k), m, 'sha256', msg, sig)).toBe(true);
      }
    }
  });
});

describe('RSA-PSS parameters (CK_RSA_PKCS_PSS_PARAMS, v2.40 §2.1.14–2.1.15)', () => {
  const pssMechs = MECHANISMS.filter((m) => m.pss);

  for (const k of rsaKeys) {
    for (const m of pssMechs) {
      it(`${k.label} ${m.name}: salt lengths 0, hLen and the maximum (emLen − hLen − 2)`, () => {
        for (const h of m.hash ? [m.hash] : HASHES) {
          for (const salt of [0, HASH_LEN[h], maxPssSalt(k, h)]) {
            const sig = signOnce(k, mechanism(m, h, salt), signInput(m, h, message));
            expect(sig.length).toBe(signatureLength(k));
            expect(verifies(publicKey(k), m, h, message, sig, salt), `${h} salt ${salt}`).toBe(true);
            if (salt > 0) expect(verifies(publicKey(k), m, h, message, sig, salt - 1), 'salt length is checked').toBe(false);
          }
        }
      });
    }
  }

  const k = rsaKeys.find((x) => x.bits === 2048)!;
  const s = () => sessionFor(k);
  const init = (mech: pkcs11js.Mechanism) => () => p11.C_SignInit(s(), mech, keyOf(k));

  for (const m of pssMechs) {
    const h: Hash = m.hash ?? 'sha256';
    it(`${m.name}: a salt one byte over the maximum is CKR_MECHANISM_PARAM_INVALID at C_SignInit`, () => {
      expectCkr(init({ mechanism: m.ckm, parameter: pssParams(h, maxPssSalt(k, h) + 1) }), 'CKR_MECHANISM_PARAM_INVALID');
      // nothing was started: a good C_SignInit works
      expect(ckrOf(init(mechanism(m, h)))).toBe('ok');
      reset(s());
    });

    it(`${m.name}: a parameter of the wrong size, or none, is CKR_MECHANISM_PARAM_INVALID`, () => {
      const good = pssParamsBuffer(CKM_HASH[h], CKG_MGF1[h], HASH_LEN[h]);
      // sanity: the raw struct itself is right, so only the size differs below
      expect(ckrOf(init({ mechanism: m.ckm, parameter: good }))).toBe('ok');
      reset(s());
      expectCkr(init({ mechanism: m.ckm, parameter: good.subarray(0, 16) }), 'CKR_MECHANISM_PARAM_INVALID', '16-byte struct');
      expectCkr(init({ mechanism: m.ckm, parameter: Buffer.concat([good, Buffer.alloc(8)]) }), 'CKR_MECHANISM_PARAM_INVALID', '32-byte struct');
      expectCkr(init({ mechanism: m.ckm }), 'CKR_MECHANISM_PARAM_INVALID', 'no parameter');
    });

    it(`${m.name}: an unsupported hashAlg or MGF is CKR_MECHANISM_PARAM_INVALID`, () => {
      expectCkr(init({ mechanism: m.ckm, parameter: pssParamsBuffer(pkcs11js.CKM_MD5, CKG_MGF1[h], 16) }), 'CKR_MECHANISM_PARAM_INVALID', 'hashAlg MD5');
      expectCkr(init({ mechanism: m.ckm, parameter: pssParamsBuffer(CKM_HASH[h], 0, 32) }), 'CKR_MECHANISM_PARAM_INVALID', 'mgf 0');
      expectCkr(init({ mechanism: m.ckm, parameter: pssParamsBuffer(CKM_HASH[h], 0x99, 32) }), 'CKR_MECHANISM_PARAM_INVALID', 'mgf 0x99');
    });

    // The spec does not tie the MGF's hash to hashAlg (RFC 8017 §9.1 only recommends it), but the
    // backing tokens do (SoftHSMv2 answers CKR_ARGUMENTS_BAD; DigiCert STM offers MGF1 with the
    // signature hash only). Decision (docs/mechanisms.md): signbridge supports MGF1 over hashAlg
    // only and refuses any other MGF at C_SignInit with CKR_MECHANISM_PARAM_INVALID — the code
    // v2.40 §5.11 gives C_SignInit for parameters the token does not support — so a tool learns it
    // before it hashes a file, and never gets a backend's CKR_ARGUMENTS_BAD from C_Sign.
    it(`${m.name}: MGF1 over another hash than hashAlg is CKR_MECHANISM_PARAM_INVALID at C_SignInit`, () => {
      for (const other of HASHES.filter((x) => x !== h)) {
        const rv = ckrOf(init({ mechanism: m.ckm, parameter: pssParams(h, HASH_LEN[h], CKG_MGF1[other]) }));
        let signRv: number | 'ok' | 'not reached' = 'not reached';
        if (rv === 'ok') signRv = ckrOf(() => p11.C_Sign(s(), signInput(m, h, message), Buffer.alloc(1024)));
        expect(
          { init: rv === 'ok' ? 'CKR_OK' : `0x${rv.toString(16)}`, sign: typeof signRv === 'number' ? `0x${signRv.toString(16)}` : signRv },
          `hashAlg ${h}, MGF1 over ${other}`,
        ).toEqual({ init: `0x${pkcs11js.CKR_MECHANISM_PARAM_INVALID.toString(16)}`, sign: 'not reached' });
      }
    });
  }

  for (const m of pssMechs.filter((x) => x.hash)) {
    it(`${m.name}: a hashAlg other than the mechanism's hash is CKR_MECHANISM_PARAM_INVALID`, () => {
      for (const other of HASHES.filter((x) => x !== m.hash)) {
        expectCkr(init({ mechanism: m.ckm, parameter: pssParams(other, HASH_LEN[other]) }), 'CKR_MECHANISM_PARAM_INVALID', `hashAlg ${other}`);
      }
    });
  }

  it('CKM_RSA_PKCS_PSS also takes SHA-1 and SHA-224 hashes (MGF1 over the same hash)', () => {
    for (const [alg, ckm, mgf, hLen] of [
      ['sha1', pkcs11js.CKM_SHA_1, pkcs11js.CKG_MGF1_SHA1, 20],
      ['sha224', pkcs11js.CKM_SHA224, pkcs11js.CKG_MGF1_SHA224, 28],
    ] as const) {
      const hash = createHash(alg).update(message).digest();
      p11.C_SignInit(s(), { mechanism: pkcs11js.CKM_RSA_PKCS_PSS, parameter: { type: pkcs11js.CK_PARAMS_RSA_PSS, hashAlg: ckm, mgf, saltLen: hLen } as pkcs11js.IParams }, keyOf(k));
      const sig = p11.C_Sign(s(), hash, Buffer.alloc(1024));
      const ok = cryptoVerify(alg, message, { key: publicKey(k), padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: hLen }, sig);
      expect(ok, alg).toBe(true);
    }
  });

  it('CKM_RSA_PKCS_PSS: the hash in must have hashAlg\'s length, else CKR_DATA_LEN_RANGE', () => {
    const m = pssMechs.find((x) => !x.hash)!;
    for (const [h, wrong] of [['sha256', 48], ['sha384', 32], ['sha512', 65]] as const) {
      p11.C_SignInit(s(), mechanism(m, h), keyOf(k));
      expectCkr(() => p11.C_Sign(s(), Buffer.alloc(wrong, 7), Buffer.alloc(1024)), 'CKR_DATA_LEN_RANGE', `${h} with ${wrong} bytes`);
      // the error ended the operation (v2.40 §5.2)
      expectCkr(() => p11.C_Sign(s(), digest(h, message), Buffer.alloc(1024)), 'CKR_OPERATION_NOT_INITIALIZED', 'after the error');
    }
  });
});

describe('wrong key type for each family', () => {
  it('EC mechanisms on RSA keys and RSA mechanisms on EC keys are CKR_KEY_TYPE_INCONSISTENT', () => {
    for (const k of [...rsaKeys, ...ecKeys]) {
      const others = k.type === 'rsa' ? mechanismsOf('ec') : mechanismsOf('rsa');
      for (const m of others) {
        expectCkr(() => p11.C_SignInit(sessionFor(k), mechanism(m, m.hash ?? 'sha256'), keyOf(k)), 'CKR_KEY_TYPE_INCONSISTENT', `${m.name} on ${k.label}`);
      }
      // nothing was left active
      const own = mechanismsOf(FAMILY_OF[k.type])[1]!;
      expect(ckrOf(() => p11.C_SignInit(sessionFor(k), mechanism(own, own.hash!), keyOf(k)))).toBe('ok');
      reset(sessionFor(k));
    }
  });

  // The Ed25519 key lives on a token of its own (design.md), whose only mechanism is CKM_EDDSA;
  // a mechanism the token does not have is CKR_MECHANISM_INVALID before any key type check.
  it('CKM_EDDSA is not offered next to RSA/EC keys, nor RSA/ECDSA next to the Ed25519 key: CKR_MECHANISM_INVALID', () => {
    for (const k of [...rsaKeys, ...ecKeys]) {
      expectCkr(() => p11.C_SignInit(sessionFor(k), { mechanism: CKM_EDDSA }, keyOf(k)), 'CKR_MECHANISM_INVALID', `EdDSA on ${k.label}`);
    }
    for (const m of [...mechanismsOf('rsa'), ...mechanismsOf('ec')]) {
      expectCkr(() => p11.C_SignInit(sessionFor(edKey), mechanism(m, m.hash ?? 'sha256'), keyOf(edKey)), 'CKR_MECHANISM_INVALID', `${m.name} on ed25519`);
    }
  });
});

describe('raw C ABI: NULL output buffer and short buffer for every key × mechanism (test/native/mechanisms.c)', () => {
  const here = dirname(fileURLToPath(import.meta.url));
  const require = createRequire(import.meta.url);
  let dir: string;
  let harness: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sb-mechanisms-'));
    harness = join(dir, 'mechanisms');
    const include = join(dirname(require.resolve('pkcs11js/package.json')), 'includes', 'pkcs11');
    try {
      execFileSync('cc', ['-std=c11', '-D_POSIX_C_SOURCE=200809L', '-Wall', '-Werror', '-I', include,
        join(here, '..', 'native', 'mechanisms.c'), '-o', harness, '-ldl'], { stdio: 'pipe' });
    } catch (e) {
      throw new Error(`cannot compile test/native/mechanisms.c (apt-get install -y gcc libc6-dev): ${String(e)}`);
    }
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers lengths locally, keeps the operation after CKR_BUFFER_TOO_SMALL, and every signature verifies', () => {
    const msgHex = message.toString('hex');
    const r = spawnSync(harness, [signbridgeModule(), msgHex, digest('sha256', message).toString('hex')], {
      env: { ...process.env, SIGNBRIDGE_SOCKET: daemon.env.SIGNBRIDGE_SOCKET },
      encoding: 'utf8',
      timeout: 120_000,
    });
    const lines = r.stdout.split('\n').filter(Boolean);
    expect(lines.filter((l) => l.startsWith('FAIL')), r.stderr).toEqual([]);
    expect(r.status, r.stderr).toBe(0);
    // sig <key label> <mechanism hex> <single|multi> <signature hex>
    const sigs = lines.filter((l) => l.startsWith('sig ')).map((l) => l.split(' '));
    const seen = new Set<string>();
    for (const [, label, ckmHex, mode, sigHex] of sigs) {
      const k = keys.find((x) => x.label === label);
      const m = MECHANISMS.find((x) => x.ckm === parseInt(ckmHex!, 16));
      expect(k && m, `known key and mechanism: ${label} ${ckmHex}`).toBeTruthy();
      const sig = Buffer.from(sigHex!, 'hex');
      expect(sig.length, `${label} ${m!.name} ${mode}`).toBe(signatureLength(k!));
      expect(verifies(publicKey(k!), m!, 'sha256', message, sig), `${label} ${m!.name} ${mode} verifies`).toBe(true);
      seen.add(`${label} ${m!.name} ${mode}`);
    }
    const want = keys.flatMap((k) =>
      mechanismsOf(FAMILY_OF[k.type]).flatMap((m) => [`${k.label} ${m.name} single`, ...(m.multipart ? [`${k.label} ${m.name} multi`] : [])]),
    );
    expect([...seen].sort()).toEqual(want.sort());
  });
});
