// node bench/verify-digest.mjs — CPU per signature check the STM backend makes before returning a
// signature (src/backends/stm/verify.ts): the addon's OpenSSL verifyDigest against the JS fallback
// (BigInt ECDSA; RSA-PSS through publicDecrypt + EMSA-PSS in JS). Prints p50 µs per check (one
// check timed at a time, sequentially) and asserts nothing. Needs `npm run build`.
import { constants, createHash, generateKeyPairSync, sign } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { verifyEcdsaDigest, verifyRsaPss } = await import(join(root, 'lib/backends/stm/verify.js'));
const { loadAddon } = await import(join(root, 'lib/native/loader.js'));

const p50 = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function time(fn, count) {
  for (let i = 0; i < Math.min(50, count); i++) fn(); // warm-up (JIT, SPKI cache)
  const xs = [];
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    if (!fn()) throw new Error('a good signature did not verify');
    xs.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  return p50(xs);
}

/** [{ key, js_us, native_us }] for EC P-256, P-384 and RSA-3072 PSS (the STM backend's usual keys). */
export function verifyDigestRows(count = Number(process.env.BENCH_COUNT ?? 300)) {
  const native = loadAddon().verifyDigest;
  const msg = Buffer.from('signbridge verify bench');
  const rows = [];
  for (const curve of ['P-256', 'P-384']) {
    const h = curve === 'P-256' ? 'sha256' : 'sha384';
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
    const d = createHash(h).update(msg).digest();
    const raw = sign(h, msg, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    rows.push({
      key: `ECDSA ${curve} (${h})`,
      js_us: time(() => verifyEcdsaDigest(publicKey, d, raw), Math.min(count, 200)),
      native_us: native ? time(() => verifyEcdsaDigest(publicKey, d, raw, native), count) : null,
    });
  }
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 3072 });
  const d = createHash('sha256').update(msg).digest();
  const sig = sign('sha256', msg, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
  rows.push({
    key: 'RSA-3072 PSS (sha256)',
    js_us: time(() => verifyRsaPss(publicKey, 'sha256', d, 32, sig), count),
    native_us: native ? time(() => verifyRsaPss(publicKey, 'sha256', d, 32, sig, native), count) : null,
  });
  return rows;
}

export function printVerifyDigest(rows) {
  console.log('\nSTM backend: the daemon\'s own check of one signature (p50 µs of CPU, sequential)');
  console.log('key                     JS fallback   addon (OpenSSL)   ratio');
  for (const r of rows) {
    const n = r.native_us === null ? 'not built' : r.native_us.toFixed(0);
    const ratio = r.native_us ? `${(r.js_us / r.native_us).toFixed(1)}×` : '';
    console.log(`${r.key.padEnd(24)}${r.js_us.toFixed(0).padStart(11)}   ${n.padStart(15)}   ${ratio}`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) printVerifyDigest(verifyDigestRows());
