// The addon's verifyDigest (native/addon/addon.cpp: OpenSSL over a digest) against the JS fallback
// in src/backends/stm/verify.ts and against signatures made by node:crypto: both paths must accept
// the same good signatures and refuse the same wrong ones.
import { constants, createHash, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HASHES } from '../../src/backends/stm/sigalg.js';
import { verifyEcdsaDigest, verifyRsaPss } from '../../src/backends/stm/verify.js';
import { ecdsaRawToDer } from '../../src/core/der.js';
import { loadAddon } from '../../src/native/loader.js';

const addon = loadAddon();
const native = addon.verifyDigest!;
const msg = Buffer.from('signbridge native verify test');
const flip = (b: Buffer, i = 5): Buffer => {
  const c = Buffer.from(b);
  c[i]! ^= 0x01;
  return c;
};
const spki = (k: KeyObject): Buffer => k.export({ type: 'spki', format: 'der' });

describe('addon verifyDigest', () => {
  it('is exported on Linux (Node exports OpenSSL): the daemon must not fall back to the slow JS check', () => {
    expect(process.platform).toBe('linux');
    expect(typeof addon.verifyDigest).toBe('function');
  });

  for (const [curve, hashes] of [['P-256', ['sha256', 'sha384', 'sha512']], ['P-384', ['sha256', 'sha384', 'sha512']], ['P-521', ['sha256', 'sha512']]] as const) {
    it(`ECDSA ${curve}: native and JS agree on OpenSSL signatures and on tampered digest, signature and key`, () => {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
      const other = generateKeyPairSync('ec', { namedCurve: curve }).publicKey;
      for (const h of hashes) {
        for (let i = 0; i < 3; i++) {
          const m = Buffer.from(`${msg} ${i}`);
          const d = createHash(h).update(m).digest();
          const raw = sign(h, m, { key: privateKey, dsaEncoding: 'ieee-p1363' });
          const cases: [Buffer, Buffer, KeyObject, boolean][] = [
            [d, raw, publicKey, true],
            [flip(d), raw, publicKey, false],
            [d, flip(raw, raw.length - 1), publicKey, false],
            [d, flip(raw, 1), publicKey, false],
            [d, raw, other, false],
          ];
          for (const [dig, sig, key, want] of cases) {
            expect(verifyEcdsaDigest(key, dig, sig, native), `native ${curve} ${h}`).toBe(want);
            expect(verifyEcdsaDigest(key, dig, sig), `js ${curve} ${h}`).toBe(want);
          }
          // the addon itself, with the DER form node:crypto makes by default
          expect(native(spki(publicKey), 'ecdsa', d, sign(h, m, privateKey))).toBe(true);
        }
      }
    });
  }

  it('ECDSA: malformed inputs are false on both paths, never a throw', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const d = createHash('sha256').update(msg).digest();
    const raw = sign('sha256', msg, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    for (const sig of [Buffer.alloc(0), raw.subarray(1), Buffer.alloc(64), Buffer.alloc(64, 0xff)]) {
      expect(verifyEcdsaDigest(publicKey, d, sig, native)).toBe(false);
      expect(verifyEcdsaDigest(publicKey, d, sig)).toBe(false);
    }
    // a key of another curve family than the JS path knows: both refuse
    const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
    const s1 = sign('sha256', msg, { key: k1.privateKey, dsaEncoding: 'ieee-p1363' });
    expect(verifyEcdsaDigest(k1.publicKey, d, s1, native)).toBe(false);
    expect(verifyEcdsaDigest(k1.publicKey, d, s1)).toBe(false);
    // the addon: truncated SPKI, trailing bytes, an RSA key for "ecdsa"
    const der = ecdsaRawToDer(raw);
    expect(native(spki(publicKey), 'ecdsa', d, der)).toBe(true);
    expect(native(spki(publicKey).subarray(0, 40), 'ecdsa', d, der)).toBe(false);
    expect(native(Buffer.concat([spki(publicKey), Buffer.alloc(1)]), 'ecdsa', d, der)).toBe(false);
    expect(native(spki(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey), 'ecdsa', d, der)).toBe(false);
  });

  it('RSA-PSS: native and JS agree (salt = hash length, MGF1 same hash); other salts, digests, signatures fail', () => {
    for (const bits of [2048, 2049, 3072]) {
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
      for (const h of HASHES.filter((x) => x.stm)) {
        const sig = sign(h.name, msg, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: h.len });
        const d = createHash(h.name).update(msg).digest();
        const cases: [Buffer, number, Buffer, boolean][] = [
          [d, h.len, sig, true],
          [flip(d), h.len, sig, false],
          [d, h.len + 1, sig, false],
          [d, h.len, flip(sig, 10), false],
          [d.subarray(1), h.len, sig, false],
        ];
        for (const [dig, salt, s, want] of cases) {
          expect(verifyRsaPss(publicKey, h.name, dig, salt, s, native), `native ${bits} ${h.name}`).toBe(want);
          expect(verifyRsaPss(publicKey, h.name, dig, salt, s), `js ${bits} ${h.name}`).toBe(want);
        }
      }
    }
    // an EC key for "rsa-pss"
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    expect(native(spki(ec), 'rsa-pss', Buffer.alloc(32), Buffer.alloc(256), 'sha256', 32)).toBe(false);
  });

  it('refuses bad arguments with a TypeError and a code', () => {
    const k = spki(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
    const call = (...a: unknown[]): unknown => (native as unknown as (...x: unknown[]) => unknown)(...a);
    expect(() => call('x', 'ecdsa', Buffer.alloc(32), Buffer.alloc(8))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => call(k, 'dsa', Buffer.alloc(32), Buffer.alloc(8))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(() => call(k, 'rsa-pss', Buffer.alloc(32), Buffer.alloc(8))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });

  it("leaves no error on OpenSSL's queue: node:crypto still signs and verifies after a failed check", () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    for (let i = 0; i < 3; i++) {
      expect(native(spki(publicKey), 'ecdsa', Buffer.alloc(32), Buffer.alloc(8, 1))).toBe(false);
      expect(native(Buffer.alloc(10), 'ecdsa', Buffer.alloc(32), Buffer.alloc(8, 1))).toBe(false);
      const sig = sign('sha256', msg, privateKey);
      expect(verify('sha256', msg, publicKey, sig)).toBe(true);
    }
  });
});
