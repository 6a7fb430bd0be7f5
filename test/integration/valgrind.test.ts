// A sign loop through the module (the normal build: SIGNBRIDGE_MODULE or build/Release) under
// valgrind memcheck: 200 signatures against a real daemon, two C_Initialize/C_Finalize lives,
// no memory error and no definite/indirect leak (--error-exitcode=99). Every signature is
// verified with node:crypto against the token's certificates.
import { spawn, spawnSync } from 'node:child_process';
import { X509Certificate, verify } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modulePath } from '../../src/native/loader.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { APT_VALGRIND, compileHarness } from '../helpers/sanitize-build.js';
import { testKey } from '../helpers/token.js';

const SIGNATURES = 200;
let dir: string;
let harness: string;
let daemon: TestDaemon;

beforeAll(async () => {
  if (spawnSync('valgrind', ['--version']).status !== 0) throw new Error(`valgrind is not installed. Run as root: ${APT_VALGRIND}`);
  dir = mkdtempSync(join(tmpdir(), 'sb-valgrind-'));
  harness = join(dir, 'sign_loop');
  compileHarness('sign_loop.c', harness, { sanitize: false });
  daemon = await startTestDaemon();
}, 60_000);

afterAll(async () => {
  await daemon?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function memcheck(args: string[], env: NodeJS.ProcessEnv) {
  return new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const p = spawn('valgrind', ['--error-exitcode=99', '--leak-check=full', '--errors-for-leak-kinds=definite,indirect',
      '--show-leak-kinds=definite,indirect', '--track-origins=yes', '--num-callers=30', ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), 150_000);
    p.on('error', reject);
    p.on('close', (status) => {
      clearTimeout(t);
      resolve({ status, stdout, stderr });
    });
  });
}

describe('valgrind memcheck', () => {
  it(`${SIGNATURES} signatures through the module: no memory error, no leak, every signature verifies`, async () => {
    const t0 = Date.now();
    const r = await memcheck([harness, modulePath(), String(SIGNATURES)], daemon.env);
    const secs = (Date.now() - t0) / 1000;
    const summary = /ERROR SUMMARY: (\d+) errors/.exec(r.stderr);
    const leaks = /definitely lost: ([\d,]+) bytes/.exec(r.stderr);
    const tail = r.stderr.slice(-6000);
    expect(r.stdout).not.toMatch(/^FAIL/m);
    expect(summary?.[1], tail).toBe('0');
    if (leaks) expect(leaks[1], tail).toBe('0');
    expect(r.status, tail).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^signed ${SIGNATURES}$`, 'm'));
    const pub = { rsa: new X509Certificate(testKey('rsa-3072').certPem).publicKey, ec: new X509Certificate(testKey('ec-p256').certPem).publicKey };
    const sigs = r.stdout.split('\n').filter((l) => l.startsWith('sig '));
    expect(sigs).toHaveLength(SIGNATURES);
    for (const line of sigs) {
      const [, kind, msgHex, sigHex] = line.split(' ');
      const msg = Buffer.from(msgHex!, 'hex');
      const sig = Buffer.from(sigHex!, 'hex');
      const ok = kind === 'rsa' ? verify('sha256', msg, pub.rsa, sig) : verify('sha256', msg, { key: pub.ec, dsaEncoding: 'ieee-p1363' }, sig);
      expect(ok, line).toBe(true);
    }
    console.log(`valgrind: ${SIGNATURES} signatures in ${secs.toFixed(1)} s, ERROR SUMMARY 0`);
  }, 180_000);

  it('the check can fail: a leak in a harness is an error valgrind reports with exit 99', async () => {
    const { writeFileSync } = await import('node:fs');
    const src = join(dir, 'leak.c');
    writeFileSync(src, '#include <stdlib.h>\n#include <string.h>\nint main(void) { char *p = malloc(64); memset(p, 1, 64); p = 0; return 0; }\n');
    const bin = join(dir, 'leak');
    compileHarness(src, bin, { sanitize: false });
    const r = await memcheck([bin], {});
    expect(r.status).toBe(99);
    expect(r.stderr).toMatch(/definitely lost: 64 bytes/);
  }, 60_000);
});
