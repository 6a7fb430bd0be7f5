// The `signbridge` command's dispatch and user-facing errors (in-process main(); the lead's e2e
// tests run the built lib/cli/index.js as a real process).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main, run } from '../../src/cli/index.js';

const dir = mkdtempSync(join(tmpdir(), 'sb-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let out = '';
let err = '';
beforeEach(() => {
  out = err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
});
afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = 0;
});

describe('signbridge CLI', () => {
  it('usage, unknown command → exit 2; per-command --help', async () => {
    expect(await main([])).toBe(2);
    expect(out).toContain('Usage: signbridge <command>');
    expect(await main(['frobnicate'])).toBe(2);
    expect(err).toContain('unknown command "frobnicate"');
    for (const c of ['daemon', 'keys', 'module-path']) {
      out = '';
      expect(await main([c, '--help'])).toBe(0);
      expect(out).toContain(`Usage: signbridge ${c}`);
    }
    expect(out).not.toContain('undefined');
  });

  it('doctor without a daemon fails with the fix; emulator is wired to the emulator CLI', async () => {
    expect(await main(['doctor', '--socket', '/nonexistent-signbridge-dir/s.sock'])).toBe(1);
    expect(out).toMatch(/FAIL {2}socket directory: \/nonexistent-signbridge-dir does not exist/);
    expect(out).toMatch(/fix: start the daemon/);
    out = '';
    expect(await main(['emulator', '--help'])).toBe(0);
    expect(out).toContain('Usage: signbridge emulator');
    err = '';
    expect(await main(['emulator'])).toBe(2); // --state-dir is required
    expect(err).toContain('--state-dir');
  });

  it('daemon --backend stm: secrets are refused as flags; a missing host is a usage error (exit 2)', async () => {
    for (const flag of ['--stm-api-key', '--api-key', '--stm-client-cert-password']) {
      err = '';
      await run(['daemon', '--backend', 'stm', flag, 'sekrit-value']);
      expect(process.exitCode).toBe(2);
      expect(err).toContain(`${flag} is not accepted`);
      expect(err).not.toContain('sekrit-value');
    }
    err = '';
    const prev = process.env.SM_HOST;
    delete process.env.SM_HOST;
    try {
      await run(['daemon', '--backend', 'stm', '--socket', join(dir, 'stm.sock')]);
    } finally {
      if (prev !== undefined) process.env.SM_HOST = prev;
    }
    expect(process.exitCode).toBe(2);
    expect(err).toContain('--stm-host <url> (or SM_HOST) is required');
    out = '';
    expect(await main(['daemon', '--help'])).toBe(0);
    expect(out).toContain('--stm-client-cert-file');
    expect(out).toContain('SM_TLS_SKIP_VERIFY');
  });

  it('module-path: the module path, or what was tried and to run npm run build', async () => {
    const prev = process.env.SIGNBRIDGE_MODULE;
    process.env.SIGNBRIDGE_MODULE = '/nonexistent/libsignbridge-pkcs11.so';
    try {
      await run(['module-path']);
      if (process.exitCode === 0) {
        expect(out.trim()).toMatch(/^\/.*libsignbridge-pkcs11\.so$/); // built: prebuilds/ or build/Release
      } else {
        expect(process.exitCode).toBe(1);
        expect(err).toContain('/nonexistent/libsignbridge-pkcs11.so (from SIGNBRIDGE_MODULE)');
        expect(err).toContain('build/Release/libsignbridge-pkcs11.so');
        expect(err).toContain('npm run build');
      }
    } finally {
      if (prev === undefined) delete process.env.SIGNBRIDGE_MODULE;
      else process.env.SIGNBRIDGE_MODULE = prev;
    }
  });

  it('keys without a daemon: one line naming the socket and how to start the daemon', async () => {
    const sock = join(dir, 'none.sock');
    await run(['keys', '--socket', sock]);
    expect(process.exitCode).toBe(1);
    expect(err).toBe(`signbridge: no signbridge daemon at ${sock} (no such socket): start it with \`signbridge daemon --backend pkcs11 …\` or set SIGNBRIDGE_SOCKET to the socket it listens on\n`);
  });

  it('daemon refuses a PIN flag and unknown options with exit 2, before touching anything', async () => {
    await run(['daemon', '--pin', '1234', '--pkcs11-library', '/x.so']);
    expect(process.exitCode).toBe(2);
    expect(err).toContain('--pin is not accepted');
    expect(err).not.toContain('1234');
    err = '';
    await run(['daemon', '--frob']);
    expect(process.exitCode).toBe(2);
    expect(err).toMatch(/Unknown option '--frob'/);
    err = '';
    await run(['daemon', '--token-label', 't']);
    expect(process.exitCode).toBe(2);
    expect(err).toContain('--pkcs11-library <path> is required');
  });
});
