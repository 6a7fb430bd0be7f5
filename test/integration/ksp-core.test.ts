// The Windows KSP's platform-neutral core (native/ksp/ksp_core.cpp), built natively: keys from
// an inventory reply, names, and each CNG SignHash form → the daemon's SIGN parameters.
// The cross-built DLL itself is driven under Wine in test/e2e/windows-ksp.test.ts.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

describe('sb_ksp_core_test', () => {
  it('picks signing keys, resolves names and plans PKCS#1, PSS and ECDSA requests', () => {
    const bin = join(root, 'build', 'Release', 'sb_ksp_core_test');
    if (!existsSync(bin)) throw new Error(`${bin} is missing: build the native code first with \`npx cmake-js compile --out build\``);
    const r = spawnSync(bin, [], { encoding: 'utf8', timeout: 60_000 });
    if (r.error) throw r.error;
    expect(r.stderr).toMatch(/sb_ksp_core_test: \d+ checks, 0 failed/);
    expect(r.status).toBe(0);
  });
});
