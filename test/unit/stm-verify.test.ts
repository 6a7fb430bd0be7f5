// The daemon's local check of STM signatures (src/backends/stm/verify.ts), against signatures
// made by node:crypto (OpenSSL) — and against tampered ones, so each check can fail.
import { constants, createHash, generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HASHES } from '../../src/backends/stm/sigalg.js';
import { verifyEcdsaDigest, verifyEd25519, verifyRsaPkcs1, verifyRsaPss } from '../../src/backends/stm/verify.js';

const msg = Buffer.from('signbridge stm verify test');
const flip = (b: Buffer, i = 5): Buffer => {
  const c = Buffer.from(b);
  c[i]! ^= 0x01;
  return c;
};

describe('ECDSA over a digest (FIPS 186-4 §6.4.2)', () => {
  for (const [curve, hashes] of [['P-256', ['sha256', 'sha384', 'sha512']], ['P-384', ['sha256', 'sha384', 'sha512']], ['P-521', ['sha256', 'sha512']]] as const) {
    it(`${curve}: accepts OpenSSL signatures, rejects tampered digest, signature and key`, () => {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
      const other = generateKeyPairSync('ec', { namedCurve: curve }).publicKey;
      for (const h of hashes) {
        for (let i = 0; i < 3; i++) {
          const m = Buffer.from(`${msg} ${i}`);
          const d = createHash(h).update(m).digest();
          const sig = sign(h, m, { key: privateKey, dsaEncoding: 'ieee-p1363' });
          expect(verifyEcdsaDigest(publicKey, d, sig), `${curve} ${h}`).toBe(true);
          expect(verifyEcdsaDigest(publicKey, flip(d), sig)).toBe(false);
          expect(verifyEcdsaDigest(publicKey, d, flip(sig, sig.length - 1))).toBe(false);
          expect(verifyEcdsaDigest(other, d, sig)).toBe(false);
        }
      }
      expect(verifyEcdsaDigest(publicKey, createHash('sha256').update(msg).digest(), Buffer.alloc(0))).toBe(false);
    });
  }
});

describe('RSA', () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2049 }); // odd size: emLen < k path
  const k2048 = generateKeyPairSync('rsa', { modulusLength: 2048 });
  it('PKCS#1 v1.5: the DigestInfo must match exactly', () => {
    for (const h of HASHES.filter((x) => x.stm)) {
      const sig = sign(h.name, msg, k2048.privateKey);
      const di = Buffer.concat([h.prefix, createHash(h.name).update(msg).digest()]);
      expect(verifyRsaPkcs1(k2048.publicKey, di, sig)).toBe(true);
      expect(verifyRsaPkcs1(k2048.publicKey, flip(di, di.length - 1), sig)).toBe(false);
      expect(verifyRsaPkcs1(k2048.publicKey, di, flip(sig))).toBe(false);
    }
  });
  it('PSS: salt = hash length, MGF1 with the same hash; other salts and keys fail', () => {
    for (const key of [k2048, { privateKey, publicKey }]) {
      for (const h of HASHES.filter((x) => x.stm)) {
        const sig = sign(h.name, msg, { key: key.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: h.len });
        const d = createHash(h.name).update(msg).digest();
        expect(verifyRsaPss(key.publicKey, h.name, d, h.len, sig)).toBe(true);
        expect(verifyRsaPss(key.publicKey, h.name, flip(d), h.len, sig)).toBe(false);
        expect(verifyRsaPss(key.publicKey, h.name, d, h.len + 1, sig)).toBe(false);
        expect(verifyRsaPss(key.publicKey, h.name, d, h.len, flip(sig, 10))).toBe(false);
      }
    }
  });
});

describe('Ed25519', () => {
  it('verifies the message; rejects another message', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const sig = sign(null, msg, privateKey);
    expect(verifyEd25519(publicKey, msg, sig)).toBe(true);
    expect(verifyEd25519(publicKey, flip(msg), sig)).toBe(false);
  });
});
