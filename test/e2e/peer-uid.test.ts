// README "Security model": only the daemon's own uid may sign. A real process of another user
// (`nobody`, through runuser) connects to the real daemon and sends HELLO; the daemon must close
// the connection without answering and log the peer's pid, uid and executable (SO_PEERCRED through
// the native addon, /proc/<pid>/exe). The socket is normally unreachable for other users (0700
// directory, 0600 socket — checked first); to get past that layer, this test opens the directory
// (0711) and the socket (0777) after start, so only the uid check stands in the way.
import { spawn } from 'node:child_process';
import { accessSync, chmodSync, constants, realpathSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonClient } from '../../src/ipc/client.js';
import { MAGIC, encodeRequest } from '../../src/ipc/protocol.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { jsonLines, waitForLog } from '../helpers/log-lines.js';

const RUNUSER = '/usr/sbin/runuser';
const NOBODY_UID = 65534;
const hello = encodeRequest('HELLO', 1, { magic: MAGIC, min_version: 1, max_version: 1, client: 'peer-uid test' }).toString('hex');

// Runs as the given user: connect, send HELLO, report {pid, uid, replied, closed} on stdout.
const CLIENT = `
const net = require('node:net');
const s = net.connect(process.argv[1]);
let replied = 0;
const done = (how) => { console.log(JSON.stringify({ pid: process.pid, uid: process.getuid(), replied, how })); process.exit(0); };
s.on('connect', () => s.write(Buffer.from(process.argv[2], 'hex')));
s.on('data', (d) => { replied += d.length; done('replied'); });
s.on('error', (e) => done('error ' + e.code));
s.on('close', () => done('closed'));
setTimeout(() => done('timeout'), 5000);
`;

interface ClientResult { pid: number; uid: number; replied: number; how: string }

function connectAs(user: string | undefined, socket: string): Promise<ClientResult> {
  const cmd = user ? RUNUSER : process.execPath;
  const args = user ? ['-u', user, '--', process.execPath, '-e', CLIENT, socket, hello] : ['-e', CLIENT, socket, hello];
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d));
    p.stderr.on('data', (d: Buffer) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => {
      try {
        resolve(JSON.parse(out.trim()) as ClientResult);
      } catch {
        reject(new Error(`${cmd} ${args.slice(0, 4).join(' ')} … exited ${code}: ${out}${err}`));
      }
    });
  });
}

let d: TestDaemon;

beforeAll(async () => {
  try {
    accessSync(RUNUSER, constants.X_OK);
  } catch {
    throw new Error(`${RUNUSER} is missing: run as root \`apt-get install -y util-linux\``);
  }
  if (process.getuid!() !== 0) throw new Error('this test switches to the user nobody with runuser: run the test suite as root (as CI does)');
  d = await startTestDaemon({ extraArgs: ['--log-level', 'debug'] });
});
afterAll(async () => {
  await d?.stop();
});

describe('who may connect', () => {
  it('the socket directory is 0700 and the socket 0600, owned by the daemon user', () => {
    const sock = d.env.SIGNBRIDGE_SOCKET!;
    expect(statSync(dirname(sock)).mode & 0o777).toBe(0o700);
    expect(statSync(sock).mode & 0o777).toBe(0o600);
    expect(statSync(sock).uid).toBe(process.getuid!());
  });

  it('a process of another uid (nobody) is closed without a reply and logged with its pid, uid and executable', async () => {
    const sock = d.env.SIGNBRIDGE_SOCKET!;
    chmodSync(dirname(sock), 0o711);
    chmodSync(sock, 0o777);
    try {
      const r = await connectAs('nobody', sock);
      expect(r.uid).toBe(NOBODY_UID);
      expect(r.replied, 'the daemon must not answer HELLO').toBe(0);
      expect(r.how).toMatch(/^(closed|error ECONNRESET|error EPIPE)$/);
      const text = await waitForLog(d.logFile, /connection refused: peer uid 65534/);
      const line = jsonLines(text).find((l) => String(l.msg).startsWith('connection refused'))!;
      expect(line).toMatchObject({ level: 40, peerUid: NOBODY_UID, peerPid: r.pid, peerExe: realpathSync(process.execPath), allowedUid: 0 });
      // no frame of that connection was processed: no hello line for its conn
      expect(jsonLines(text).filter((l) => l.conn === line.conn && l.msg === 'hello')).toHaveLength(0);

      // control (the test can fail): the daemon's own uid, same client, same open socket, gets its reply
      const own = await connectAs(undefined, sock);
      expect(own.replied).toBeGreaterThan(0);
      // and everyone else keeps being served
      const c = await DaemonClient.connect({ socketPath: sock });
      expect((await c.inventory()).slots.length).toBeGreaterThan(0);
      c.close();
    } finally {
      chmodSync(sock, 0o600);
      chmodSync(dirname(sock), 0o700);
    }
  });

  it('--allow-uid 65534: the same client run as nobody is served; a uid not listed (daemon, 1) still is not', async () => {
    const allowing = await startTestDaemon({ extraArgs: ['--log-level', 'debug', '--allow-uid', String(NOBODY_UID)] });
    const sock = allowing.env.SIGNBRIDGE_SOCKET!;
    chmodSync(dirname(sock), 0o711);
    chmodSync(sock, 0o777);
    try {
      const r = await connectAs('nobody', sock);
      expect(r.uid).toBe(NOBODY_UID);
      expect(r.replied, 'an allowed uid gets its HELLO answered').toBeGreaterThan(0);
      const text = await waitForLog(allowing.logFile, new RegExp(`"peerUid":${NOBODY_UID}[^\\n]*"msg":"hello"`));
      expect(jsonLines(text).filter((l) => String(l.msg).startsWith('connection refused'))).toHaveLength(0);
      expect(jsonLines(text).find((l) => l.msg === 'listening')).toMatchObject({ allowUids: [NOBODY_UID] });
      // control: the user daemon (uid 1) is not listed, so it is refused as before
      const other = await connectAs('daemon', sock);
      expect(other.uid).toBe(1);
      expect(other.replied).toBe(0);
      const refused = await waitForLog(allowing.logFile, /connection refused: peer uid 1 /);
      expect(jsonLines(refused).find((l) => String(l.msg).startsWith('connection refused'))).toMatchObject({ peerUid: 1, allowedUid: 0, allowUids: [NOBODY_UID] });
    } finally {
      await allowing.stop();
    }
  });

  it("every accepted connection's log lines carry the peer's pid, uid and executable", async () => {
    const c = await DaemonClient.connect({ socketPath: d.env.SIGNBRIDGE_SOCKET! });
    c.close();
    const text = await waitForLog(d.logFile, new RegExp(`"peerPid":${process.pid}[^\\n]*"msg":"hello"`));
    const line = jsonLines(text).find((l) => l.peerPid === process.pid && l.msg === 'hello')!;
    expect(line).toMatchObject({ peerUid: process.getuid!(), peerExe: realpathSync(process.execPath) });
  });
});
