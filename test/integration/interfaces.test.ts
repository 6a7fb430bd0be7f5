// Runs test/native/interfaces.c — the PKCS#11 3.0 interfaces (C_GetInterfaceList's two-call
// convention, C_GetInterface by name/version and NULL/NULL = 3.0), signing through the 3.0
// function list, C_LoginUser, C_SessionCancel, an unimplemented 3.0 entry, C_GenerateRandom /
// C_SeedRandom and C_GetObjectSize — against a real daemon. The harness prints the signatures it
// made through the 3.0 list; they are verified here with node:crypto against the token's certificates.
import { execFileSync, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { verify as cryptoVerify, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testToken } from '../helpers/token.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { modulePath } from '../../src/native/loader.js';

const token = testToken();
const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
let dir: string;
let harness: string;
let daemon: TestDaemon;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sb-interfaces-'));
  harness = join(dir, 'interfaces');
  const include = join(dirname(require.resolve('pkcs11js/package.json')), 'includes', 'pkcs11');
  try {
    execFileSync('cc', ['-std=c11', '-D_POSIX_C_SOURCE=200809L', '-Wall', '-I', include,
      join(here, '..', 'native', 'interfaces.c'), '-o', harness, '-ldl'], { stdio: 'pipe' });
  } catch (e) {
    throw new Error(`cannot compile the interfaces harness (apt-get install -y gcc): ${String(e)}`);
  }
  daemon = await startTestDaemon();
});

afterAll(async () => {
  await daemon?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('PKCS#11 3.0 interfaces, random and object size through the raw C ABI', () => {
  it('passes every check, and the signatures made through the 3.0 list verify', () => {
    const r = spawnSync(harness, [modulePath()], {
      env: { ...process.env, SIGNBRIDGE_SOCKET: daemon.socket },
      encoding: 'utf8',
      timeout: 60_000,
    });
    const lines = r.stdout.split('\n').filter(Boolean);
    expect(lines.filter((l) => l.startsWith('FAIL'))).toEqual([]);
    expect(r.status).toBe(0);
    expect(lines.filter((l) => l.startsWith('ok ')).length).toBeGreaterThan(70);
    for (const name of ['default is 3.0', 'interface list short buffer', 'C_MessageSignInit not supported',
      'random does not repeat', 'seed refused', 'login user with a name', 'cancelled sign is gone'])
      expect(lines).toContain(`ok ${name}`);
    const sigs = lines.filter((l) => l.startsWith('sig '));
    expect(sigs.map((l) => l.split(' ')[1])).toEqual(['SHA256_RSA_PKCS', 'ECDSA_SHA256']);
    const certs = Object.fromEntries(token.keys.map((k) => [k.label, new X509Certificate(k.certPem).publicKey]));
    for (const line of sigs) {
      const [, name, dataHex, sigHex] = line.split(' ');
      const data = Buffer.from(dataHex!, 'hex');
      const sig = Buffer.from(sigHex!, 'hex');
      if (name === 'SHA256_RSA_PKCS') {
        expect(cryptoVerify('sha256', data, certs['rsa-3072']!, sig)).toBe(true);
      } else {
        expect(cryptoVerify('sha256', data, { key: certs['ec-p256']!, dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
      }
    }
  });
});
