// node bench/thread-hop.mjs — the three measurements docs/performance.md relies on:
//  1. one ECDSA P-256 signature on SoftHSMv2 through pkcs11js, synchronous (on the calling thread)
//     and asynchronous (C_Sign with a callback: a hop to the libuv thread pool and back);
//  2. a worker_threads round trip (postMessage there and back, no signing);
//  3. a 200-byte O_DSYNC append on tmpfs (/dev/shm) and on the disk under os.tmpdir().
// Prints p50 per row in µs; asserts nothing. Needs `npm run build` (for lib/softhsm).
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync, constants, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import pkcs11js from 'pkcs11js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { createToken } = await import(join(root, 'lib/softhsm/token-setup.js'));
const COUNT = Number(process.env.BENCH_COUNT ?? 3000);
const p50 = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const now = () => process.hrtime.bigint();
const us = (t0) => Number(now() - t0) / 1000;

const dir = mkdtempSync(join(tmpdir(), 'sb-hop-'));
const rows = [];
try {
  const token = await createToken({ stateDir: join(dir, 'token'), tokenLabel: 'hop', keys: [{ type: 'ec', curve: 'P-256', label: 'ec', idHex: '02' }] });
  process.env.SOFTHSM2_CONF = token.softhsmConf;
  const p = new pkcs11js.PKCS11();
  p.load(token.library);
  p.C_Initialize();
  const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trim() === 'hop');
  const s = p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  p.C_Login(s, pkcs11js.CKU_USER, readFileSync(token.pinFile, 'utf8').trim());
  p.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_ID, value: Buffer.from('02', 'hex') }]);
  const [key] = p.C_FindObjects(s, 1);
  p.C_FindObjectsFinal(s);
  const digest = Buffer.alloc(32, 7);
  const out = Buffer.alloc(64);
  const mech = { mechanism: pkcs11js.CKM_ECDSA };

  const sync = [];
  for (let i = 0; i < COUNT; i++) {
    const t0 = now();
    p.C_SignInit(s, mech, key);
    p.C_Sign(s, digest, out);
    sync.push(us(t0));
  }
  rows.push(['pkcs11js C_SignInit + C_Sign, synchronous', p50(sync)]);

  const async = [];
  for (let i = 0; i < COUNT; i++) {
    const t0 = now();
    p.C_SignInit(s, mech, key);
    await new Promise((res, rej) => p.C_Sign(s, digest, out, (e) => (e ? rej(e) : res())));
    async.push(us(t0));
  }
  rows.push(['pkcs11js C_SignInit + C_Sign(callback), thread pool', p50(async)]);
  p.C_Logout(s);
  p.C_CloseSession(s);
  p.C_Finalize();

  const w = new Worker('const { parentPort } = require("node:worker_threads"); parentPort.on("message", (m) => parentPort.postMessage(m));', { eval: true });
  const hop = [];
  for (let i = 0; i < COUNT; i++) {
    const t0 = now();
    await new Promise((res) => { w.once('message', res); w.postMessage(digest); });
    hop.push(us(t0));
  }
  await w.terminate();
  rows.push(['worker_threads postMessage round trip (no signing)', p50(hop)]);

  const line = Buffer.alloc(200, 0x61);
  for (const [name, base] of [['tmpfs (/dev/shm)', '/dev/shm'], [`disk (${tmpdir()})`, dir]]) {
    if (!existsSync(base)) continue;
    const d = mkdtempSync(join(base, 'sb-hop-audit-'));
    const fd = openSync(join(d, 'audit.log'), constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_DSYNC, 0o600);
    const t = [];
    for (let i = 0; i < Math.min(COUNT, 1000); i++) {
      const t0 = now();
      writeSync(fd, line);
      t.push(us(t0));
    }
    closeSync(fd);
    rmSync(d, { recursive: true, force: true });
    rows.push([`200-byte O_DSYNC append on ${name}`, p50(t)]);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`p50 of ${COUNT} (O_DSYNC rows: ${Math.min(COUNT, 1000)}), µs`);
for (const [name, v] of rows) console.log(`${name.padEnd(56)} ${v.toFixed(1).padStart(8)}`);
