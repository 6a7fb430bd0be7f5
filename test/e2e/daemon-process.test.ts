// src/demo/daemon-process.ts against the real daemon: it starts, answers HELLO, stops cleanly, and a
// daemon that cannot start is reported quickly with its own stderr (not after a long timeout).
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaemonClient } from '../../src/ipc/client.js';
import { startDaemon } from '../../src/demo/daemon-process.js';
import { testToken } from '../helpers/token.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'sbd-'));
  dirs.push(d);
  return d;
}

describe('startDaemon', () => {
  it('starts the daemon, which answers HELLO and lists the token keys; stop() ends the process', async () => {
    const t = testToken();
    const dir = tempDir();
    const d = await startDaemon({ socket: join(dir, 's.sock'), softhsmConf: t.softhsmConf, library: t.library, tokenLabel: t.tokenLabel, pinFile: t.pinFile, logFile: join(dir, 'log') });
    try {
      expect(d.pid).toBeGreaterThan(0);
      const c = await DaemonClient.connect({ socketPath: d.socket, timeoutMs: 5000 });
      expect(c.version).toBe(1);
      c.close();
      expect(() => process.kill(d.pid, 0)).not.toThrow();
    } finally {
      await d.stop();
    }
    expect(() => process.kill(d.pid, 0)).toThrow(); // gone
    // the PIN never reaches the daemon's log
    const pin = readFileSync(t.pinFile, 'utf8');
    if (existsSync(join(dir, 'log'))) expect(readFileSync(join(dir, 'log'), 'utf8')).not.toContain(pin);
  });

  it('fails fast with the daemon\'s stderr when the token does not exist', async () => {
    const t = testToken();
    const dir = tempDir();
    const started = Date.now();
    await expect(
      startDaemon({ socket: join(dir, 's.sock'), softhsmConf: t.softhsmConf, library: t.library, tokenLabel: 'no-such-token', pinFile: t.pinFile, logFile: join(dir, 'log'), timeoutMs: 30_000 }),
    ).rejects.toThrow(/exited during start-up[\s\S]*no-such-token/);
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});
