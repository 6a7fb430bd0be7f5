// README "Failure behaviour": a tool that cannot reach the daemon, or that the daemon refuses, says
// so without SIGNBRIDGE_DEBUG — one line on stderr, the first time in the process for each cause,
// naming the socket and what to do (signing tools print only "Function failed" themselves).
// SIGNBRIDGE_QUIET=1 silences it; it never goes to stdout, where tools write signatures.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { osslsigncodeSign } from '../../src/demo/osslsigncode.js';
import { FrameDecoder } from '../../src/ipc/framing.js';
import { decodeMessage, encodeErrorReply, encodeReply } from '../../src/ipc/protocol.js';
import { requireCommand } from '../helpers/consumer-tools.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { signbridgeModule, unsignedPe } from '../helpers/module.js';
import { runCommand } from '../helpers/run.js';
import { compileHarness } from '../helpers/sanitize-build.js';
import { testToken } from '../helpers/token.js';

const CKR_FUNCTION_FAILED = '0x6';
let work: string;
let harness: string;
// A socket path nobody listens on (not a default path, so no directory check is involved).
let absent: string;

/** env without SIGNBRIDGE_DEBUG: what a user has */
function userEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.SIGNBRIDGE_DEBUG;
  delete env.SIGNBRIDGE_QUIET;
  return { ...env, ...extra };
}
const notices = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('signbridge: '));

// Asynchronous: the fake daemons below live in this process and must answer meanwhile.
async function runHarness(env: Record<string, string>) {
  const r = await runCommand(harness, [signbridgeModule()], { env: userEnv(env) });
  return { ...r, notices: notices(r.stderr) };
}

beforeAll(() => {
  requireCommand('pkcs11-tool', 'opensc');
  requireCommand('osslsigncode', 'osslsigncode');
  requireCommand('keytool', 'openjdk-17-jdk-headless');
  work = mkdtempSync(join(tmpdir(), 'sb-notice-'));
  absent = join(work, 'no-daemon.sock');
  harness = join(work, 'trust');
  compileHarness('trust.c', harness, { sanitize: false });
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('no daemon: one line on stderr, by default, once per process', () => {
  const expectTheLine = (stderr: string, stdout: string) => {
    const lines = notices(stderr);
    expect(lines, stderr).toHaveLength(1);
    expect(lines[0]).toContain(`cannot reach the signbridge daemon at ${absent}`);
    expect(lines[0]).toContain('start it with "signbridge daemon ..." or set SIGNBRIDGE_SOCKET');
    expect(stdout).not.toContain('signbridge:');
  };

  it('pkcs11-tool -L', async () => {
    const r = await runCommand('pkcs11-tool', ['--module', signbridgeModule(), '-L'], { env: userEnv({ SIGNBRIDGE_SOCKET: absent }) });
    expect(r.status).not.toBe(0);
    expectTheLine(r.stderr, r.stdout);
    console.log(`pkcs11-tool with no daemon, as a user sees it:\n${r.stderr}`);
  });

  it('osslsigncode sign (libp11 enumerates the slots more than once)', async () => {
    const r = await osslsigncodeSign({
      module: signbridgeModule(),
      tokenLabel: testToken().tokenLabel,
      keyLabel: 'rsa-3072',
      input: unsignedPe(),
      output: join(work, 'never.exe'),
      env: userEnv({ SIGNBRIDGE_SOCKET: absent }),
    });
    expect(r.status).not.toBe(0);
    expectTheLine(r.stderr, r.stdout);
  });

  it('keytool -list through SunPKCS11', async () => {
    const cfg = join(work, 'java.cfg');
    writeFileSync(cfg, `name=signbridge\nlibrary=${signbridgeModule()}\nslotListIndex=0\n`);
    const r = await runCommand(
      'keytool',
      ['-list', '-storetype', 'PKCS11', '-providerClass', 'sun.security.pkcs11.SunPKCS11', '-providerArg', cfg, '-storepass', 'anything'],
      { env: userEnv({ SIGNBRIDGE_SOCKET: absent }) },
    );
    expect(r.status).not.toBe(0);
    expectTheLine(r.stderr, r.stdout);
  });

  it('the same process failing again prints nothing more; SIGNBRIDGE_QUIET=1 prints nothing; the codes stay', async () => {
    const loud = await runHarness({ SIGNBRIDGE_SOCKET: absent });
    expect(loud.stdout.match(new RegExp(`slots ${CKR_FUNCTION_FAILED} 0`, 'g'))).toHaveLength(2);
    expect(loud.notices, loud.stderr).toHaveLength(1);
    const quiet = await runHarness({ SIGNBRIDGE_SOCKET: absent, SIGNBRIDGE_QUIET: '1' });
    expect(quiet.stdout).toBe(loud.stdout);
    expect(quiet.stderr).toBe('');
    const debug = await runHarness({ SIGNBRIDGE_SOCKET: absent, SIGNBRIDGE_DEBUG: '1' });
    expect(debug.notices.length, debug.stderr).toBeGreaterThan(2); // the notice + one debug line per failure
  });
});

describe('protocol version mismatch (a module and a daemon from different releases)', () => {
  let server: Server;
  let sock: string;
  let answer: 'refuse' | 'choose-2' = 'refuse';
  beforeAll(async () => {
    sock = join(work, 'other-version.sock');
    // A daemon of another release, as far as the wire shows: it decodes our HELLO and either
    // refuses our version range (what signbridge's daemon does) or picks a version we do not speak.
    server = createServer((s) => {
      const dec = new FrameDecoder();
      s.on('data', (chunk) => {
        for (const f of dec.push(chunk)) {
          const m = decodeMessage(f);
          if (m.call !== 'HELLO') continue;
          s.write(
            answer === 'refuse'
              ? encodeErrorReply('HELLO', m.id, 6, 'signbridge daemon speaks protocol 2..2, module speaks 1..1: upgrade the module')
              : encodeReply('HELLO', m.id, { version: 2, server: 'signbridge-daemon/9.0.0' }),
          );
        }
      });
      s.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(sock, r));
  });
  afterAll(() => server?.close());

  it('a daemon that refuses our versions: CKR_FUNCTION_FAILED and one line naming both versions', async () => {
    answer = 'refuse';
    const r = await runHarness({ SIGNBRIDGE_SOCKET: sock });
    expect(r.stdout).toContain(`slots ${CKR_FUNCTION_FAILED} 0`);
    expect(r.notices, r.stderr).toHaveLength(1);
    expect(r.notices[0]).toContain(`module speaks protocol 1, the daemon at ${sock} does not`);
    expect(r.notices[0]).toContain('signbridge daemon speaks protocol 2..2');
    expect(r.notices[0]).toContain('use the same signbridge version on both sides');
    console.log(`version mismatch, as a user sees it:\n${r.notices[0]}`);
  });

  it('a daemon that picks a version we do not speak: the same', async () => {
    answer = 'choose-2';
    const r = await runHarness({ SIGNBRIDGE_SOCKET: sock });
    expect(r.stdout).toContain(`slots ${CKR_FUNCTION_FAILED} 0`);
    expect(r.notices, r.stderr).toHaveLength(1);
    expect(r.notices[0]).toMatch(/^signbridge: module speaks protocol 1, daemon 2 \(.*\): use the same signbridge version on both sides$/);
  });
});

describe('a daemon that requires a client secret', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    const secretFile = join(work, 'client-secret');
    writeFileSync(secretFile, 'notice-test-client-secret-5d1e\n');
    chmodSync(secretFile, 0o600);
    d = await startTestDaemon({ extraArgs: ['--client-secret-file', secretFile] });
  });
  afterAll(async () => {
    await d?.stop();
  });

  it('a tool that looks for a private key without C_Login finds none, and one line says which secret to give', async () => {
    // what osslsigncode without -pass or a Java app without a PIN does: search for the key first
    const script = `
      const pkcs11js = require('pkcs11js');
      const p = new pkcs11js.PKCS11();
      p.load(process.argv[1]);
      p.C_Initialize();
      const s = p.C_OpenSession(p.C_GetSlotList(true)[0], pkcs11js.CKF_SERIAL_SESSION);
      for (let i = 0; i < 2; i++) {
        p.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }]);
        console.log('private keys found: ' + p.C_FindObjects(s, 10).length);
        p.C_FindObjectsFinal(s);
      }
      p.C_Finalize();`;
    const r = await runCommand(process.execPath, ['-e', script, signbridgeModule()], { env: userEnv({ SIGNBRIDGE_SOCKET: d.env.SIGNBRIDGE_SOCKET! }), cwd: process.cwd() });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('private keys found: 0\nprivate keys found: 0\n');
    const lines = notices(r.stderr);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toContain('requires a login before its private keys can be used');
    expect(lines[0]).toContain('--client-secret-file');
    expect(lines[0]).toContain('pkcs11-tool --login --pin');
  });
});
