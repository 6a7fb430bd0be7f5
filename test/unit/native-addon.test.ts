// signbridge_addon.peerCredentials (design.md "Addon API") on real unix sockets.
import { openSync, closeSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
type Addon = { peerCredentials(fd: number): { pid: number; uid: number; gid: number } };
const addon = createRequire(import.meta.url)(join(root, 'build', 'Release', 'signbridge_addon.node')) as Addon;

function fdOf(s: Socket): number {
  return (s as unknown as { _handle: { fd: number } })._handle.fd;
}

describe('peerCredentials', () => {
  it('returns the pid/uid/gid of the process at the other end', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sba-'));
    const path = join(dir, 'a.sock');
    let serverSide: Socket | undefined;
    const server = createServer((c) => (serverSide = c));
    await new Promise<void>((r) => server.listen(path, r));
    const client = createConnection(path);
    try {
      await new Promise<void>((r) => client.on('connect', r));
      while (!serverSide) await new Promise((r) => setTimeout(r, 5));
      expect(addon.peerCredentials(fdOf(serverSide))).toEqual({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    } finally {
      client.destroy();
      serverSide?.destroy();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('throws Errors with a code set natively', () => {
    const fd = openSync(join(root, 'package.json'), 'r');
    try {
      expect(() => addon.peerCredentials(fd)).toThrow(expect.objectContaining({ code: 'SIGNBRIDGE_ERR_PEERCRED' }));
    } finally {
      closeSync(fd);
    }
    expect(() => addon.peerCredentials(-1)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => addon.peerCredentials(1.5)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => (addon.peerCredentials as (x: unknown) => unknown)('3')).toThrow(TypeError);
    expect(() => (addon.peerCredentials as () => unknown)()).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });
});
