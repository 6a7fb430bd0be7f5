// `signbridge demo --backend csc` as a user runs it (the built CLI, a child process); the signed
// PDF is then checked again here with pdfsig (NSS) against the demo's NSS database, where only the
// emulator CA is trusted — the demo's own verdict is not taken on trust.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cliPath } from '../../src/demo/daemon-process.js';
import { pdfsigVerify } from '../../src/demo/pdfsig.js';
import { describeRun, runCommand } from '../helpers/run.js';

const parent = mkdtempSync(join(tmpdir(), 'sb-csc-demo-'));
afterAll(() => rmSync(parent, { recursive: true, force: true }));

describe('signbridge demo --backend csc', () => {
  it('signs a PDF with pdfsig through the csc chain and verifies it', async () => {
    const stateDir = join(parent, 'csc');
    const r = await runCommand(process.execPath, [cliPath(), 'demo', '--backend', 'csc', '--state-dir', stateDir], { timeoutMs: 150_000 });
    expect(r.status, describeRun(r)).toBe(0);
    expect(r.stdout).toContain('document signing: CSC emulator, pdfsig');
    expect(r.stdout).toContain('Signature Validation: Signature is Valid.');
    const signed = join(stateDir, 'demo.doc-rsa.signed.pdf');
    const v = await pdfsigVerify(join(stateDir, 'nss'), signed, { ...process.env });
    expect(v.stdout, describeRun(v)).toMatch(/Signature Validation: Signature is Valid\./);
    expect(v.stdout).toMatch(/Certificate Validation: Certificate is Trusted\./);
  }, 180_000);
});
