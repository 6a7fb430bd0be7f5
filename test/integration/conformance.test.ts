// Runs test/native/conformance.c — the module through its raw C ABI (NULL and short buffers,
// the five C_GetAttributeValue cases, argument and state errors) — against a real daemon and
// with no daemon at all. The harness prints the signatures it made; they are verified here
// with node:crypto against the certificates SoftHSMv2 holds.
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

function run(mode: 'daemon' | 'no-daemon', socket: string): { lines: string[]; status: number | null } {
  const r = spawnSync(harness, [modulePath(), mode], {
    env: { ...process.env, SIGNBRIDGE_SOCKET: socket },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { lines: r.stdout.split('\n').filter(Boolean), status: r.status };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sb-conformance-'));
  harness = join(dir, 'conformance');
  compileHarness('conformance.c', harness, { sanitize: false });
  daemon = await startTestDaemon();
});

afterAll(async () => {
  await daemon?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('raw C ABI conformance', () => {
  it('passes every check against a real daemon, and its signatures verify', () => {
    const { lines, status } = run('daemon', daemon.socket);
    const failed = lines.filter((l) => l.startsWith('FAIL'));
    expect(failed).toEqual([]);
    expect(status).toBe(0);
    expect(lines.filter((l) => l.startsWith('ok ')).length).toBeGreaterThan(60);
    const { names, verified } = verifyHarnessSignatures(lines, token.keys);
    expect(names).toEqual(['SHA256_RSA_PKCS', 'ECDSA_SHA256']);
    expect(verified).toEqual([true, true]);
  });

  it('answers fast and specifically when no daemon listens', () => {
    const { lines, status } = run('no-daemon', join(dir, 'absent.sock'));
    expect(lines.filter((l) => l.startsWith('FAIL'))).toEqual([]);
    expect(status).toBe(0);
  });

  it('prints one clear stderr line with SIGNBRIDGE_DEBUG', () => {
    const r = spawnSync(harness, [modulePath(), 'no-daemon'], {
      env: { ...process.env, SIGNBRIDGE_SOCKET: join(dir, 'absent.sock'), SIGNBRIDGE_DEBUG: '1' },
      encoding: 'utf8',
    });
    const lines = r.stderr.split('\n').filter(Boolean);
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines[0]).toMatch(/^signbridge: .*absent\.sock.*signbridge daemon/);
  });
});
