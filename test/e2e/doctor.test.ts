// `signbridge doctor` against a real daemon: every check passes, the keys and their URIs are
// listed; then with the daemon gone it fails and says how to start it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliPath } from '../../src/demo/daemon-process.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { describeRun, runCommand } from '../helpers/run.js';
import { testToken } from '../helpers/token.js';

let daemon: TestDaemon;
beforeAll(async () => {
  daemon = await startTestDaemon();
});
afterAll(async () => {
  await daemon?.stop();
});

describe('signbridge doctor', () => {
  it('a healthy installation: exit 0, the daemon, its keys with their URIs and certificate expiry', async () => {
    const r = await runCommand(process.execPath, [cliPath(), 'doctor', '--socket', daemon.socket]);
    expect(r.status, describeRun(r)).toBe(0);
    expect(r.stdout).toMatch(/^ok {4}PKCS#11 module: \/.*libsignbridge-pkcs11\.so$/m);
    expect(r.stdout).toMatch(/^ok {4}daemon: signbridge\/\S+ .*answers on .* \(protocol 1\); 2 key\(s\) in 1 slot\(s\)$/m);
    const t = testToken();
    expect(r.stdout).toContain(`pkcs11:token=${t.tokenLabel};id=%01;object=rsa-3072;type=private`);
    expect(r.stdout).toMatch(/^ok {4}key ec-p256: EC P-256, .*certificate valid until \d{4}-\d\d-\d\d/m);
    expect(r.stdout).toMatch(/all checks passed/);
  });

  it('--json: the same checks, machine-readable', async () => {
    const r = await runCommand(process.execPath, [cliPath(), 'doctor', '--json', '--socket', daemon.socket]);
    const j = JSON.parse(r.stdout) as { ok: boolean; checks: Array<{ status: string; what: string }> };
    expect(j.ok).toBe(true);
    expect(j.checks.filter((c) => c.what.startsWith('key ')).map((c) => c.what).sort()).toEqual(['key ec-p256', 'key rsa-3072']);
  });

  it('the daemon gone: exit 1, FAIL with how to start it', async () => {
    const socket = daemon.socket;
    await daemon.stop();
    const r = await runCommand(process.execPath, [cliPath(), 'doctor', '--socket', socket]);
    expect(r.status, describeRun(r)).toBe(1);
    expect(r.stdout).toMatch(/^FAIL {2}(socket|socket directory|daemon): .*/m);
    expect(r.stdout).toMatch(/signbridge daemon/);
  });
});
