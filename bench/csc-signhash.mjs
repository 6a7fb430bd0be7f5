// node bench/csc-signhash.mjs — what one signatures/signHash call with several hashes saves
// over one call per hash, against the CSC emulator (HTTPS keep-alive, keys in SoftHSMv2): the
// ceiling for the csc backend's coalescing. Prints a table; asserts nothing.
// BENCH_HASHES (default 256) hashes per row, signed with batch sizes 1, 4, 16, 64.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { startCscEmulator } = await import(join(root, 'lib/emulator/csc/index.js'));
const TOTAL = Number(process.env.BENCH_HASHES ?? 256);
const BATCHES = [1, 4, 16, 64];
const CREDENTIALS = [
  { id: 'doc-ec', signAlgo: '1.2.840.10045.4.3.2' },
  { id: 'doc-rsa', signAlgo: '1.2.840.113549.1.1.11' },
];

const dir = mkdtempSync(join(tmpdir(), 'sb-bench-csc-'));
console.log(`starting the CSC emulator in ${dir} (first run: RSA-3072 key generation) …`);
const emu = await startCscEmulator({ stateDir: dir });
const dispatcher = new Agent({ connect: { ca: readFileSync(emu.env.SIGNBRIDGE_CSC_CA_FILE) }, connections: 1 });
async function post(path, body, headers) {
  const r = await request(emu.url + path, { dispatcher, method: 'POST', body, headers });
  if (r.statusCode === 204) return null;
  const j = await r.body.json();
  if (r.statusCode !== 200) throw new Error(`${path}: ${r.statusCode} ${JSON.stringify(j)}`);
  return j;
}
const tok = await post('/oauth2/token', new URLSearchParams({ grant_type: 'client_credentials', client_id: emu.env.SIGNBRIDGE_CSC_CLIENT_ID, client_secret: emu.env.SIGNBRIDGE_CSC_CLIENT_SECRET }).toString(), {
  'content-type': 'application/x-www-form-urlencoded',
});
const h = { 'content-type': 'application/json', authorization: `Bearer ${tok.access_token}` };
const api = (m, b) => post(`/csc/v1/${m}`, JSON.stringify(b), h);

const rows = [];
try {
  for (const c of CREDENTIALS) {
    for (const batch of BATCHES) {
      emu.resetStats();
      const hashes = Array.from({ length: TOTAL }, (_, i) => createHash('sha256').update(`${c.id} ${batch} ${i}`).digest('base64'));
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < TOTAL; i += batch) {
        const part = hashes.slice(i, i + batch);
        // one OTP authorisation per batch, as a client with per-call authorisation would do
        await api('credentials/sendOTP', { credentialID: c.id });
        const OTP = readFileSync(join(dir, 'otp', c.id), 'utf8').trim();
        const { SAD } = await api('credentials/authorize', { credentialID: c.id, numSignatures: part.length, OTP });
        await api('signatures/signHash', { credentialID: c.id, SAD, hash: part, signAlgo: c.signAlgo });
      }
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      const s = emu.stats();
      rows.push({
        credential: c.id,
        'hashes/call': batch,
        'signHash calls': s.requests['POST /csc/v1/signatures/signHash'],
        'HTTP calls': Object.values(s.requests).reduce((a, b) => a + b, 0),
        'ms/signature': +(ms / TOTAL).toFixed(3),
        'signatures/s': Math.round((TOTAL * 1000) / ms),
      });
    }
  }
  console.log(`\n${TOTAL} signatures per row; each batch: sendOTP + authorize(numSignatures = batch) + signHash (one keep-alive connection)`);
  console.table(rows);
} finally {
  await dispatcher.close();
  await emu.stop();
  rmSync(dir, { recursive: true, force: true });
}
