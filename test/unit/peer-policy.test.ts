// Who may connect (README "Security model"; src/daemon/peer-policy.ts): the daemon's own uid plus
// --allow-uid. The policy on its own, the flag/config parsing, and the real server with the real
// SO_PEERCRED addon: this process is refused by a server that believes it runs as another uid,
// and served once its uid is allowed with --allow-uid. A foreign process through runuser:
// test/e2e/peer-uid.test.ts.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pkcs11Backend } from '../../src/backends/pkcs11/index.js';
import { resolveConfig } from '../../src/daemon/config.js';
import { Dispatcher } from '../../src/daemon/dispatcher.js';
import { parseUidList, peerPolicy } from '../../src/daemon/peer-policy.js';
import { DaemonServer } from '../../src/daemon/server.js';
import { DaemonClient } from '../../src/ipc/client.js';
import { loadAddon } from '../../src/native/loader.js';
import { testToken } from '../helpers/token.js';

const dir = mkdtempSync(join(tmpdir(), 'sb-peer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('peerPolicy', () => {
  it("only the daemon's own uid by default; root is not an exception", () => {
    const p = peerPolicy(1000, []);
    expect(p.allowed).toEqual([1000]);
    expect(p.refusal(1000)).toBeUndefined();
    expect(p.refusal(0)).toBe("connection refused: peer uid 0 is not the daemon's uid 1000");
    expect(p.refusal(1001)).toMatch(/peer uid 1001/);
    expect(p.logFields).toEqual({ allowedUid: 1000 });
  });

  it('--allow-uid adds uids (deduplicated, the own uid not repeated); everyone else is still refused', () => {
    const p = peerPolicy(0, [1000, 1001, 1000, 0]);
    expect(p.allowed).toEqual([0, 1000, 1001]);
    for (const uid of [0, 1000, 1001]) expect(p.refusal(uid)).toBeUndefined();
    expect(p.refusal(65534)).toBe("connection refused: peer uid 65534 is not the daemon's uid 0 nor an --allow-uid (1000, 1001)");
    expect(p.refusal(1002)).toBeDefined();
    expect(p.logFields).toEqual({ allowedUid: 0, allowUids: [1000, 1001] });
  });

  it('parseUidList: numeric uids separated by commas, anything else is refused with the expected form', () => {
    expect(parseUidList('1000')).toEqual([1000]);
    expect(parseUidList(' 1000, 1001 ,0')).toEqual([1000, 1001, 0]);
    expect(parseUidList(1000)).toEqual([1000]);
    for (const bad of ['', ',', 'builder', '-1', '1.5', '1000;1001', '4294967295']) {
      expect(() => parseUidList(bad), bad).toThrow(/--allow-uid/);
    }
  });

  it('config: --allow-uid flag and "allow-uid" config key; a bad value is a configuration error (exit 2)', () => {
    const base = { 'pkcs11-library': '/usr/lib/softhsm/libsofthsm2.so', socket: join(dir, 's.sock') };
    expect(resolveConfig(base, {}).allowUids).toEqual([]);
    expect(resolveConfig({ ...base, 'allow-uid': '1000,1001' }, {}).allowUids).toEqual([1000, 1001]);
    const file = join(dir, 'daemon.json');
    writeFileSync(file, JSON.stringify({ ...base, 'allow-uid': 1000 }));
    expect(resolveConfig({ config: file }, {}).allowUids).toEqual([1000]);
    // the flag wins over the file
    expect(resolveConfig({ config: file, 'allow-uid': '1002' }, {}).allowUids).toEqual([1002]);
    expect(() => resolveConfig({ ...base, 'allow-uid': 'builder' }, {})).toThrow(expect.objectContaining({ code: 'SIGNBRIDGE_ERR_CONFIG' }));
  });
});

describe('the server applies it with SO_PEERCRED (native addon)', () => {
  const lines: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(s) });
  const me = process.getuid!();
  const other = me === 0 ? 1000 : 0; // a uid this process does not have
  let backend: Pkcs11Backend;
  let dispatcher: Dispatcher;

  beforeAll(async () => {
    const t = testToken();
    process.env.SOFTHSM2_CONF = t.softhsmConf;
    backend = new Pkcs11Backend({ library: t.library, tokenLabel: t.tokenLabel, pin: readFileSync(t.pinFile, 'utf8').trim() });
    await backend.start();
    dispatcher = new Dispatcher({ backend, serverName: 'peer-policy test' });
  });
  afterAll(async () => backend?.close());

  async function serve(socket: string, allowUids: number[]): Promise<DaemonServer> {
    // ownUid: the server behaves as a daemon of uid `other` (e.g. root serving a build user)
    const s = new DaemonServer({
      socketPath: join(dir, socket), logger, accept: dispatcher.accept,
      peerCredentials: loadAddon().peerCredentials, requirePeerCredentials: true, ownUid: other, allowUids,
    });
    await s.listen();
    return s;
  }

  it('a peer of another uid is refused and logged with pid/uid/exe; listed with --allow-uid it is served', async () => {
    const refusing = await serve('refuse.sock', []);
    try {
      await expect(DaemonClient.connect({ socketPath: refusing.socketPath, timeoutMs: 2000 })).rejects.toBeDefined();
      const refused = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => String(l.msg).startsWith('connection refused'));
      expect(refused).toMatchObject({ level: 40, peerUid: me, peerPid: process.pid, allowedUid: other, msg: `connection refused: peer uid ${me} is not the daemon's uid ${other}` });
      expect(typeof refused!.peerExe).toBe('string');
    } finally {
      await refusing.close();
    }
    const allowing = await serve('allow.sock', [me]);
    try {
      const c = await DaemonClient.connect({ socketPath: allowing.socketPath, timeoutMs: 2000 });
      expect((await c.inventory()).slots.length).toBe(1);
      c.close();
    } finally {
      await allowing.close();
    }
    expect(lines.filter((l) => l.includes('connection refused'))).toHaveLength(1);
  });
});
