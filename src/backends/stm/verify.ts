// The daemon's own check of every STM signature before it goes back to the tool (on by default,
// docs/stm-backend.md "Verification"): a wrong key or algorithm is caught here, not by the user's
// verifier. The daemon only holds a digest (the module hashes), and node:crypto verifies messages,
// so: RSA PKCS#1 v1.5 → public-key "decrypt" and compare the DigestInfo; RSA-PSS → RFC 8017
// §9.1.2 EMSA-PSS-VERIFY over the raw RSA output; ECDSA → FIPS 186-4 §6.4.2 over the digest with
// the curve arithmetic below; Ed25519 → node:crypto (it has the message).
// ECDSA and RSA-PSS go to the addon's verifyDigest (OpenSSL over the digest, ~50× cheaper than the
// BigInt code: docs/performance.md "Verification") when the daemon was given it; the JS code is the
// fallback for an addon built without it (win32, a host that exports no OpenSSL).
import { constants, createHash, publicDecrypt, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { ecdsaRawToDer } from '../../core/der.js';
import type { HashName } from './sigalg.js';

/** The addon's verifyDigest (native/addon/addon.cpp): ECDSA takes a DER Ecdsa-Sig-Value. */
export type NativeVerifyDigest = (
  spkiDer: Buffer,
  kind: 'ecdsa' | 'rsa-pss',
  digest: Buffer,
  signature: Buffer,
  hash?: string,
  saltLen?: number,
) => boolean;

// A key's SPKI is exported once, not per signature.
const spkiCache = new WeakMap<KeyObject, Buffer>();
function spkiOf(key: KeyObject): Buffer {
  let der = spkiCache.get(key);
  if (!der) spkiCache.set(key, (der = key.export({ type: 'spki', format: 'der' })));
  return der;
}

const HASH_LEN: Record<HashName, number> = { sha1: 20, sha224: 28, sha256: 32, sha384: 48, sha512: 64 };

/** RSASSA-PKCS1-v1_5: `sig` must decrypt to exactly `digestInfo`. */
export function verifyRsaPkcs1(publicKey: KeyObject, digestInfo: Buffer, sig: Buffer): boolean {
  try {
    return publicDecrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, sig).equals(digestInfo);
  } catch {
    return false;
  }
}

function mgf1(hash: HashName, seed: Buffer, len: number): Buffer {
  const out: Buffer[] = [];
  let have = 0;
  for (let c = 0; have < len; c++) {
    const ctr = Buffer.alloc(4);
    ctr.writeUInt32BE(c);
    const block = createHash(hash).update(seed).update(ctr).digest();
    out.push(block);
    have += block.length;
  }
  return Buffer.concat(out).subarray(0, len);
}

/** RSASSA-PSS with MGF1(hash) over a digest (RFC 8017 §8.1.2 + §9.1.2). */
export function verifyRsaPss(publicKey: KeyObject, hash: HashName, mHash: Buffer, saltLen: number, sig: Buffer, native?: NativeVerifyDigest): boolean {
  if (native) return mHash.length === HASH_LEN[hash] && native(spkiOf(publicKey), 'rsa-pss', mHash, sig, hash, saltLen);
  const modBits = publicKey.asymmetricKeyDetails?.modulusLength;
  if (!modBits) return false;
  let em: Buffer;
  try {
    em = publicDecrypt({ key: publicKey, padding: constants.RSA_NO_PADDING }, sig);
  } catch {
    return false;
  }
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  const hLen = HASH_LEN[hash];
  if (em.length > emLen) {
    if (em.subarray(0, em.length - emLen).some((b) => b !== 0)) return false;
    em = em.subarray(em.length - emLen);
  }
  if (mHash.length !== hLen || emLen < hLen + saltLen + 2 || em[emLen - 1] !== 0xbc) return false;
  const maskedDb = em.subarray(0, emLen - hLen - 1);
  const h = em.subarray(emLen - hLen - 1, emLen - 1);
  const topMask = 0xff >> (8 * emLen - emBits);
  if ((maskedDb[0]! & ~topMask) !== 0) return false;
  const db = mgf1(hash, h, maskedDb.length);
  for (let i = 0; i < db.length; i++) db[i] ^= maskedDb[i]!;
  db[0]! &= topMask;
  const psLen = emLen - hLen - saltLen - 2;
  if (db.subarray(0, psLen).some((b) => b !== 0) || db[psLen] !== 0x01) return false;
  const salt = db.subarray(psLen + 1);
  const h2 = createHash(hash).update(Buffer.alloc(8)).update(mHash).update(salt).digest();
  return h2.equals(h);
}

// --- ECDSA over a digest -------------------------------------------------------------------
// Short Weierstrass curves with a = -3 (FIPS 186-4 D.1.2), Jacobian coordinates. Only public
// values are involved (verification), so constant time does not matter here.

interface CurveParams {
  p: bigint;
  n: bigint;
  b: bigint;
  gx: bigint;
  gy: bigint;
}

const CURVES: Record<string, CurveParams> = {
  'P-256': {
    p: 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn,
    n: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
    b: 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn,
    gx: 0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296n,
    gy: 0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5n,
  },
  'P-384': {
    p: 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffffn,
    n: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
    b: 0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aefn,
    gx: 0xaa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7n,
    gy: 0x3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5fn,
  },
  'P-521': {
    p: (1n << 521n) - 1n,
    n: 0x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n,
    b: 0x0051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00n,
    gx: 0x00c6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d3dbaa14b5e77efe75928fe1dc127a2ffa8de3348b3c1856a429bf97e7e31c2e5bd66n,
    gy: 0x011839296a789a3bc0045c8a5fb42c7d1bd998f54449579b446817afbd17273e662c97ee72995ef42640c550b9013fad0761353c7086a272c24088be94769fd16650n,
  },
};

type Jac = [bigint, bigint, bigint];

function modPow(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n;
  b %= m;
  for (; e > 0n; e >>= 1n) {
    if (e & 1n) r = (r * b) % m;
    b = (b * b) % m;
  }
  return r;
}

function makeOps(p: bigint) {
  const md = (x: bigint): bigint => ((x % p) + p) % p;
  const dbl = ([x, y, z]: Jac): Jac => {
    if (z === 0n || y === 0n) return [1n, 1n, 0n];
    const delta = md(z * z);
    const gamma = md(y * y);
    const beta = md(x * gamma);
    const alpha = md(3n * (x - delta) * (x + delta)); // a = -3
    const x3 = md(alpha * alpha - 8n * beta);
    const z3 = md((y + z) * (y + z) - gamma - delta);
    const y3 = md(alpha * (4n * beta - x3) - 8n * gamma * gamma);
    return [x3, y3, z3];
  };
  const add = (P: Jac, Q: Jac): Jac => {
    if (P[2] === 0n) return Q;
    if (Q[2] === 0n) return P;
    const z1z1 = md(P[2] * P[2]);
    const z2z2 = md(Q[2] * Q[2]);
    const u1 = md(P[0] * z2z2);
    const u2 = md(Q[0] * z1z1);
    const s1 = md(P[1] * Q[2] * z2z2);
    const s2 = md(Q[1] * P[2] * z1z1);
    const h = md(u2 - u1);
    const r = md(s2 - s1);
    if (h === 0n) return r === 0n ? dbl(P) : [1n, 1n, 0n];
    const hh = md(h * h);
    const hhh = md(h * hh);
    const x3 = md(r * r - hhh - 2n * u1 * hh);
    const y3 = md(r * (u1 * hh - x3) - s1 * hhh);
    const z3 = md(h * P[2] * Q[2]);
    return [x3, y3, z3];
  };
  return { md, dbl, add };
}

const toBig = (b: Buffer): bigint => (b.length === 0 ? 0n : BigInt('0x' + b.toString('hex')));

const NATIVE_CURVES = new Set(['prime256v1', 'secp384r1', 'secp521r1']);

/**
 * ECDSA verification of a raw r‖s signature over a digest (FIPS 186-4 §6.4.2). The digest is
 * truncated to the bit length of n, as the standard says. False for anything malformed.
 */
export function verifyEcdsaDigest(publicKey: KeyObject, digest: Buffer, rawSig: Buffer, native?: NativeVerifyDigest): boolean {
  if (native) {
    if (rawSig.length === 0 || rawSig.length % 2 !== 0) return false;
    // the curves the JS path knows (FIPS 186-4 D.1.2), so both paths accept the same keys
    if (!NATIVE_CURVES.has(publicKey.asymmetricKeyDetails?.namedCurve ?? '')) return false;
    return native(spkiOf(publicKey), 'ecdsa', digest, ecdsaRawToDer(rawSig));
  }
  const jwk = publicKey.export({ format: 'jwk' }) as { crv?: string; x?: string; y?: string };
  const c = jwk.crv ? CURVES[jwk.crv] : undefined;
  if (!c || !jwk.x || !jwk.y || rawSig.length === 0 || rawSig.length % 2 !== 0) return false;
  const { p, n } = c;
  const half = rawSig.length / 2;
  const r = toBig(rawSig.subarray(0, half));
  const s = toBig(rawSig.subarray(half));
  if (r <= 0n || r >= n || s <= 0n || s >= n) return false;
  const qx = toBig(Buffer.from(jwk.x, 'base64url'));
  const qy = toBig(Buffer.from(jwk.y, 'base64url'));
  const { md, dbl, add } = makeOps(p);
  // The public point must be on the curve: y² = x³ − 3x + b.
  if (md(qy * qy) !== md(qx * qx * qx - 3n * qx + c.b)) return false;
  let e = toBig(digest);
  const nBits = n.toString(2).length;
  if (digest.length * 8 > nBits) e >>= BigInt(digest.length * 8 - nBits);
  const w = modPow(s, n - 2n, n);
  const u1 = (e * w) % n;
  const u2 = (r * w) % n;
  // Shamir's trick: u1·G + u2·Q in one pass over the bits.
  const G: Jac = [c.gx, c.gy, 1n];
  const Q: Jac = [qx, qy, 1n];
  const GQ = add(G, Q);
  let acc: Jac = [1n, 1n, 0n];
  const bits = Math.max(u1.toString(2).length, u2.toString(2).length);
  for (let i = bits - 1; i >= 0; i--) {
    acc = dbl(acc);
    const b1 = (u1 >> BigInt(i)) & 1n;
    const b2 = (u2 >> BigInt(i)) & 1n;
    if (b1 && b2) acc = add(acc, GQ);
    else if (b1) acc = add(acc, G);
    else if (b2) acc = add(acc, Q);
  }
  if (acc[2] === 0n) return false;
  const zInv = modPow(acc[2], p - 2n, p);
  const x = md(acc[0] * zInv * zInv);
  return x % n === r;
}

/** Ed25519 over the message. */
export function verifyEd25519(publicKey: KeyObject, message: Buffer, sig: Buffer): boolean {
  try {
    return nodeVerify(null, message, publicKey, sig);
  } catch {
    return false;
  }
}
