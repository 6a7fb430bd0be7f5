// The CNG key storage provider under Wine (docs/windows-signtool.md): Wine's ncrypt never loads
// a third-party KSP, so test/native/ksp_harness.cpp loads signbridge-ksp.dll itself and drives it
// as the CNG router would, against the real daemon under Windows Node on a named pipe (stm backend
// → the STM emulator running natively). Each signature is verified by Wine's
// BCryptVerifySignature in the harness and again here with node:crypto. `signbridge windows
// certsync` runs under Windows Node and its store entries are read back with crypt32.
// Registration with CNG and signtool itself need real Windows: .github/workflows/windows.yml.
import { spawn } from 'node:child_process';
import { X509Certificate, constants, createHash, verify } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestEmulator } from '../helpers/emulator.js';
import { describeRun, runCommand } from '../helpers/run.js';
import {
  requireMingw,
  requireWine,
  runWine,
  winPath,
  type WineDaemon,
} from '../helpers/wine.js';
import { startWineStage, type WineStage } from '../helpers/wine-stage.js';

const root = join(import.meta.dirname, '..', '..');
const PIPE = `\\\\.\\pipe\\signbridge-ksp-test-${process.pid}`;
const KEYS = ['codesign-rsa', 'codesign-ec', 'codesign-p384'];

let emu: TestEmulator;
let work: string;
let wine: WineStage['wine'];
let tree: WineStage['tree'];
let nodeExe: string;
let harness: string;
let daemon: WineDaemon;
let prebuilt: string;

let stage: WineStage | undefined;
beforeAll(async () => {
  stage = await startWineStage({
    tag: 'ksp',
    pipe: PIPE,
    beforeDaemon: async (s) => {
      // the KSP and its helper ship beside the module (prebuilds/win32-x64/), where the CLI looks
      prebuilt = join(s.tree.root, 'prebuilds', 'win32-x64');
      for (const f of ['signbridge-ksp.dll', 'signbridge-windows.exe']) copyFileSync(join(dirname(s.bin.dll), f), join(prebuilt, f));
      harness = join(s.work, 'ksp_harness.exe');
      const gxx = requireMingw().replace(/gcc-posix$/, 'g++-posix');
      const b = await runCommand(gxx, ['-std=c++17', '-O1', '-Wall', '-static', join(root, 'test', 'native', 'ksp_harness.cpp'), '-o', harness, '-lbcrypt', '-lcrypt32'], {});
      if (b.status !== 0) throw new Error(`cannot build ksp_harness.cpp\n${describeRun(b)}`);
      // the daemon lists keys at start: the P-384 key must exist before it
      await s.emu.createKeypair({ alias: 'codesign-p384', key_alg: 'ECDSA', curve: 'P-384' });
    },
  });
  ({ work, wine, nodeExe, tree, emu, daemon } = stage);
}, 900_000);

afterAll(() => stage?.stop(), 60_000);

const ksp = (): string => winPath(join(prebuilt, 'signbridge-ksp.dll'));

/** `signbridge …` under Windows Node; output through a file (Windows Node cannot write to a Linux pipe). */
async function signbridge(args: string[]): Promise<{ status: number | null; out: string }> {
  const file = join(work, `cli-${Date.now()}.txt`);
  const fd = openSync(file, 'w', 0o600);
  const child = spawn(requireWine(), [nodeExe, winPath(tree.cli), ...args], { env: { ...wine.env, SIGNBRIDGE_SOCKET: PIPE }, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const status = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { status, out: readFileSync(file, 'utf8') };
}

/** The KSP's log file in the prefix: %LOCALAPPDATA%\signbridge\ksp.log. */
function kspLog(): string {
  const users = join(wine.prefix, 'drive_c', 'users');
  for (const u of readdirSync(users)) {
    const p = join(users, u, 'AppData', 'Local', 'signbridge', 'ksp.log');
    if (existsSync(p)) return readFileSync(p, 'utf8');
  }
  return '';
}

describe('signbridge-ksp.dll under Wine, daemon on a named pipe (stm backend → emulator)', () => {
  let output = '';
  const certs = new Map<string, X509Certificate>();

  it('OpenProvider → EnumKeys → OpenKey → GetKeyProperty → SignHash → Free*: every check passes, BCryptVerifySignature accepts each signature', async () => {
    const r = await runWine(wine.env, harness, [ksp(), ...KEYS], { SIGNBRIDGE_SOCKET: PIPE });
    output = r.stdout;
    // the harness's own report (every CHECK line, the keys, the signatures), for the run's log
    process.stdout.write(`--- ksp_harness.exe under Wine\n${r.stdout.replace(/^(SIG .{60}).*$/gm, '$1…').replace(/^(KEY \S+ \S+ \d+ .{24}).*$/gm, '$1…')}`);
    const why = `${describeRun(r)}\n--- ksp.log\n${kspLog()}\n--- daemon\n${daemon.log()}`;
    expect(r.stdout, why).toContain('DONE 0 failed');
    expect(r.stdout, why).not.toContain('CHECK FAIL');
    expect(r.status, why).toBe(0);
    expect(r.stdout).toMatch(/CHECK ok BCryptVerifySignature|: BCryptVerifySignature 0x00000000/);
    // in the daemon's inventory order
    const enumLine = r.stdout.split(/\r?\n/).find((l) => l.startsWith('ENUM')) ?? '';
    expect(enumLine.split(' ').slice(1).sort()).toEqual(['codesign-ec(ECDSA_P256)', 'codesign-p384(ECDSA_P384)', 'codesign-rsa(RSA)']);
    const keyLines = r.stdout.split(/\r?\n/).filter((l) => l.startsWith('KEY '));
    expect(keyLines.map((l) => l.split(' ').slice(1, 4).join(' '))).toEqual(['codesign-rsa RSA 3072', 'codesign-ec ECDSA_P256 256', 'codesign-p384 ECDSA_P384 384']);
    for (const l of keyLines) {
      const [, name, , , der] = l.split(' ');
      const cert = new X509Certificate(Buffer.from(der!, 'hex'));
      expect(cert.subject).toContain(`CN=${name!}`);
      certs.set(name!, cert);
    }
  });

  it('node:crypto verifies every signature again: RSA PKCS#1 v1.5 (SHA-256/384), RSA-PSS, ECDSA P-256 and P-384 (r‖s)', () => {
    const sigs = output.split(/\r?\n/).filter((l) => l.startsWith('SIG '));
    expect(sigs.map((l) => l.split(' ').slice(1, 4).join(' '))).toEqual([
      'codesign-rsa PKCS1 SHA256',
      'codesign-rsa PKCS1 SHA384',
      'codesign-rsa PSS SHA256',
      'codesign-ec ECDSA SHA256',
      'codesign-p384 ECDSA SHA384',
    ]);
    for (const l of sigs) {
      const [, name, scheme, hash, msgHex, sigHex] = l.split(' ');
      const key = certs.get(name!)!.publicKey;
      const alg = hash!.toLowerCase();
      const opts =
        scheme === 'PSS' ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : scheme === 'ECDSA' ? { key, dsaEncoding: 'ieee-p1363' as const } : key;
      const msg = Buffer.from(msgHex!, 'hex');
      const sig = Buffer.from(sigHex!, 'hex');
      if (scheme === 'ECDSA') expect(sig.length).toBe(name === 'codesign-p384' ? 96 : 64);
      expect(verify(alg, msg, opts, sig), l).toBe(true);
      expect(verify(alg, Buffer.concat([msg, Buffer.from([0])]), opts, sig), 'another message must not verify').toBe(false);
    }
  });

  it('each failure leaves one line in %LOCALAPPDATA%\\signbridge\\ksp.log that names it', () => {
    const log = kspLog();
    const line = log.split(/\r?\n/).find((l) => /pid \d+ OpenKey 0x80090016 NTE_BAD_KEYSET: OpenKey: the daemon has no signing key named 'no-such-key' \(keys: /.test(l));
    expect(line, log).toBeDefined();
    for (const k of KEYS) expect(line).toContain(k);
    expect(line).toContain('`signbridge keys` lists them');
    expect(log).toMatch(/CreatePersistedKey 0x80090029 NTE_NOT_SUPPORTED: /);
    expect(log).toMatch(/GetKeyProperty 0x80090029 NTE_NOT_SUPPORTED: GetKeyProperty 'codesign-rsa': no property "No Such Property"/);
  });

  it('no daemon on the pipe: OpenKey answers NTE_DEVICE_NOT_READY at once and the log says where it looked', async () => {
    const nobody = `\\\\.\\pipe\\signbridge-nobody-${process.pid}`;
    const r = await runWine(wine.env, harness, [ksp(), '--no-daemon'], { SIGNBRIDGE_SOCKET: nobody, SIGNBRIDGE_TIMEOUT_MS: '30000' });
    const why = `${describeRun(r)}\n--- ksp.log\n${kspLog()}`;
    expect(r.stdout, why).toContain('DONE 0 failed');
    expect(Number(/ELAPSED_MS (\d+)/.exec(r.stdout)?.[1]), why).toBeLessThan(5000);
    expect(kspLog(), why).toContain(`OpenKey 0x80090030 NTE_DEVICE_NOT_READY: GET_INVENTORY failed:`);
    expect(kspLog(), why).toContain(nobody);
  });

  it('signbridge windows certsync (Windows Node): each certificate in HKCU My, linked to the KSP and the key, read back with crypt32; certdesync removes them', async () => {
    const sync = await signbridge(['windows', 'certsync', '--socket', PIPE]);
    expect(sync.status, sync.out).toBe(0);
    const helper = join(prebuilt, 'signbridge-windows.exe');
    const list = await runWine(wine.env, helper, ['certlist']);
    expect(list.status, describeRun(list)).toBe(0);
    const rows = list.stdout.split(/\r?\n/).filter((l) => l.startsWith('CERT ')).sort();
    const want = KEYS.map((k) => {
      const der = certs.get(k)!.raw;
      return `CERT ${createHash('sha1').update(der).digest('hex')} Signbridge Key Storage Provider|${k}|0|0`;
    }).sort();
    expect(rows, `${sync.out}\n${describeRun(list)}`).toEqual(want);
    for (const k of KEYS) expect(sync.out).toContain(`-> "Signbridge Key Storage Provider" key "${k}"`);

    const desync = await signbridge(['windows', 'certdesync']);
    expect(desync.status, desync.out).toBe(0);
    expect(desync.out.match(/^removed [0-9a-f]{40} /gm)?.length, desync.out).toBe(3);
    const after = await runWine(wine.env, helper, ['certlist']);
    expect(after.stdout.split(/\r?\n/).filter((l) => l.startsWith('CERT ')), describeRun(after)).toEqual([]);
  });

  it('signbridge windows install-ksp under Wine: copies the DLL to System32, then says Wine registered nothing (real Windows: the workflow)', async () => {
    const r = await signbridge(['windows', 'install-ksp']);
    expect(r.out).toMatch(/copied .*signbridge-ksp\.dll -> C:\\windows\\system32\\signbridge-ksp\.dll/i);
    expect(r.out).toContain("Wine's bcrypt accepts the call and writes nothing: run on Windows");
    expect(r.status).toBe(1);
    const un = await signbridge(['windows', 'uninstall-ksp']);
    expect(un.status, un.out).toBe(0);
    expect(un.out).toMatch(/was not there: nothing to remove/);
    expect(un.out).toMatch(/deleted C:\\windows\\system32\\signbridge-ksp\.dll/i);
  });
});
