// `signbridge demo` as a user runs it (the built CLI, a child process), then its signed files are
// checked again with osslsigncode here — the demo's own verdict is not taken on trust.
// Default: the remote chain (STM emulator → daemon --backend stm); --backend pkcs11: the local one.
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliPath } from '../../src/demo/daemon-process.js';
import { osslsigncodeVerify, parseVerify } from '../../src/demo/osslsigncode.js';
import { describeRun, runCommand } from '../helpers/run.js';

const parent = mkdtempSync(join(tmpdir(), 'sb-demo-'));
afterAll(() => rmSync(parent, { recursive: true, force: true }));

async function socketClosed(stateDir: string): Promise<void> {
  const sock = join(stateDir, 'run', 'signbridge.sock');
  if (existsSync(sock)) {
    const probe = await runCommand(process.execPath, ['-e', `require('net').connect(${JSON.stringify(sock)}).on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))`]);
    expect(probe.status).toBe(1);
  }
}

describe('signbridge demo', () => {
  it('remote chain (default): emulator + daemon --backend stm; both PEs verify against the emulator CA', async () => {
    const stateDir = join(parent, 'remote');
    const r = await runCommand(process.execPath, [cliPath(), 'demo', '--state-dir', stateDir], { timeoutMs: 150_000 });
    expect(r.status, describeRun(r)).toBe(0);
    expect(r.stdout).toContain('remote chain: DigiCert STM emulator');
    expect(r.stdout).toMatch(/^codesign-rsa\s+RSA-3072 \(sha256\)\s+\S+win32-loader\.codesign-rsa\.signed\.exe\s+OK \(Signature verification: ok\)/m);
    expect(r.stdout).toMatch(/^codesign-ec\s+ECDSA P-256 \(sha256\)\s+\S+win32-loader\.codesign-ec\.signed\.exe\s+OK \(Signature verification: ok\)/m);
    expect(r.stdout).toContain('the emulator made 2 signature(s)');
    expect(r.stdout).toContain('All 2 signatures verified');
    const ca = join(stateDir, 'emulator', 'ca.crt');
    for (const label of ['codesign-rsa', 'codesign-ec']) {
      const v = await osslsigncodeVerify(join(stateDir, `win32-loader.${label}.signed.exe`), ca);
      expect(parseVerify(v).ok, describeRun(v)).toBe(true);
    }
    await socketClosed(stateDir);
    // a second run recreates the state dir (a new emulator, new keys)
    const again = await runCommand(process.execPath, [cliPath(), 'demo', '--state-dir', stateDir], { timeoutMs: 150_000 });
    expect(again.status, describeRun(again)).toBe(0);
  });

  it('local chain (--backend pkcs11): a token, signs win32-loader.exe with both keys through signbridge, every signature verifies', async () => {
    const stateDir = join(parent, 'state');
    const r = await runCommand(process.execPath, [cliPath(), 'demo', '--backend', 'pkcs11', '--state-dir', stateDir], { timeoutMs: 150_000 });
    expect(r.status, describeRun(r)).toBe(0);
    expect(r.stdout).toMatch(/^rsa-3072\s+RSA-3072 \(sha256\)\s+\S+win32-loader\.rsa-3072\.signed\.exe\s+OK \(Signature verification: ok\)/m);
    expect(r.stdout).toMatch(/^ec-p256\s+ECDSA P-256 \(sha256\)\s+\S+win32-loader\.ec-p256\.signed\.exe\s+OK \(Signature verification: ok\)/m);
    expect(r.stdout).toContain('All 2 signatures verified');
    for (const label of ['rsa-3072', 'ec-p256']) {
      const v = await osslsigncodeVerify(join(stateDir, `win32-loader.${label}.signed.exe`), join(stateDir, `${label}.pem`));
      expect(parseVerify(v).ok, describeRun(v)).toBe(true);
    }
    await socketClosed(stateDir);
    const again = await runCommand(process.execPath, [cliPath(), 'demo', '--backend', 'pkcs11', '--state-dir', stateDir], { timeoutMs: 150_000 });
    expect(again.status, describeRun(again)).toBe(0);
  });

  it('refuses to wipe a directory it did not create, and an unknown backend', async () => {
    const foreign = join(parent, 'foreign');
    await runCommand('mkdir', ['-p', join(foreign, 'keep-me')]);
    const r = await runCommand(process.execPath, [cliPath(), 'demo', '--state-dir', foreign]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('choose a new or empty --state-dir');
    expect(existsSync(join(foreign, 'keep-me'))).toBe(true);
    const b = await runCommand(process.execPath, [cliPath(), 'demo', '--backend', 'hsm', '--state-dir', join(parent, 'x')]);
    expect(b.status).toBe(2);
    expect(b.stderr).toContain('--backend must be stm, pkcs11 or csc');
  });
});
