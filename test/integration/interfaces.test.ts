// Runs test/native/interfaces.c — the PKCS#11 3.0 interfaces (C_GetInterfaceList's two-call
// convention, C_GetInterface by name/version and NULL/NULL = 3.0), signing through the 3.0
// function list, C_LoginUser, C_SessionCancel, an unimplemented 3.0 entry, C_GenerateRandom /
// C_SeedRandom and C_GetObjectSize — against a real daemon. The harness prints the signatures it
// made through the 3.0 list; they are verified here with node:crypto against the token's certificates.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyHarnessSignatures } from '../helpers/signing.js';
import { testToken } from '../helpers/token.js';
import { compileHarness } from '../helpers/sanitize-build.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { modulePath } from '../../src/native/loader.js';

const token = testToken();
const here = dirname(fileURLToPath(import.meta.url));
let dir: string;
let harness: string;
let daemon: TestDaemon;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sb-interfaces-'));
  harness = join(dir, 'interfaces');
  compileHarness('interfaces.c', harness, { sanitize: false });
  daemon = await startTestDaemon();
});

afterAll(async () => {
  await daemon?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('PKCS#11 3.0 interfaces, random and object size through the raw C ABI', () => {
  it('passes every check, and the signatures made through the 3.0 list verify', () => {
    const { SIGNBRIDGE_DEBUG: _unset, ...env } = process.env;
    const r = spawnSync(harness, [modulePath()], {
      env: { ...env, SIGNBRIDGE_SOCKET: daemon.socket },
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
    expect(r.stderr).toBe(''); // SIGNBRIDGE_DEBUG unset: the failures below say nothing
    const { names, verified } = verifyHarnessSignatures(lines, token.keys);
    expect(names).toEqual(['SHA256_RSA_PKCS', 'ECDSA_SHA256']);
    expect(verified).toEqual([true, true]);
  });

  // Every non-OK answer a user can act on says why under SIGNBRIDGE_DEBUG (design.md "Environment"):
  // one "signbridge: <call>: <reason> (<CKR>)" line per failure the harness provokes on purpose.
  it('with SIGNBRIDGE_DEBUG, gives one reason line for each failure a user can act on', () => {
    const r = spawnSync(harness, [modulePath()], {
      env: { ...process.env, SIGNBRIDGE_SOCKET: daemon.socket, SIGNBRIDGE_DEBUG: '1' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.stdout.split('\n').filter((l) => l.startsWith('FAIL'))).toEqual([]);
    const lines = r.stderr.split('\n').filter(Boolean);
    for (const l of lines) expect(l, l).toMatch(/^signbridge: C_\w+: \S.* \(CKR_[A-Z_?]+\)$/);
    const want: Array<[string, string, RegExp]> = [
      ['C_Initialize', 'CKR_CRYPTOKI_ALREADY_INITIALIZED', /C_Finalize first/],
      ['C_GetMechanismInfo', 'CKR_MECHANISM_INVALID', /C_GetMechanismList/],
      ['C_SignInit', 'CKR_OPERATION_ACTIVE', /C_SignFinal/],
      ['C_SignInit', 'CKR_KEY_HANDLE_INVALID', /signbridge keys/],
      ['C_DigestInit', 'CKR_OPERATION_ACTIVE', /C_DigestFinal/],
      ['C_FindObjectsInit', 'CKR_OPERATION_ACTIVE', /C_FindObjectsFinal/],
      ['C_Login', 'CKR_USER_ALREADY_LOGGED_IN', /per token/],
      ['C_LoginUser', 'CKR_USER_ALREADY_LOGGED_IN', /per token/],
      ['C_Encrypt', 'CKR_FUNCTION_NOT_SUPPORTED', /only signs/],
      ['C_MessageSignInit', 'CKR_FUNCTION_NOT_SUPPORTED', /only signs/],
      ['C_SeedRandom', 'CKR_RANDOM_SEED_NOT_SUPPORTED', /seeds itself/],
      ['C_GetInterface', 'CKR_ARGUMENTS_BAD', /no such interface/],
    ];
    for (const [fn, ckr, reason] of want) {
      const hit = lines.filter((l) => l.startsWith(`signbridge: ${fn}: `) && l.endsWith(`(${ckr})`));
      expect(hit.length, `${fn} ${ckr}\n${r.stderr}`).toBeGreaterThan(0);
      expect(hit[0]).toMatch(reason);
    }
    expect(r.stderr).not.toContain('1234'); // the PIN given to C_Login
  });
});
