// The daemon on the Node versions and CPUs people run, from package trees laid out as installed
// (lib/, package.json, node_modules, prebuilds/<platform>-<arch>/ from `npm run prebuilds`; no
// build/), with official Node binaries from npm (test/helpers/node-dist.ts):
//  - Node 22 x64: the daemon (pkcs11 backend, the run's SoftHSMv2 token) and the linux-x64
//    prebuilt addon; a signature through the prebuilt module verifies with node:crypto.
//  - Node 20 arm64 under qemu-user: the arm64 daemon with the arm64 prebuilt addon (the peer-uid
//    check on every connection) and pkcs11js cross-built for arm64 (the daemon imports it),
//    backend stm against the STM emulator (x64, in this process: no arm64 SoftHSMv2 here); an
//    aarch64 harness dlopens the arm64 module and signs; node:crypto verifies against the
//    certificate, which must chain to the emulator's CA.
// Time: about a minute once the cache holds the Node binaries and the builds (the first run
// downloads 2 × 50 MB and builds the prebuilds and pkcs11js for arm64: several minutes).
import { X509Certificate } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archSign, verifies } from '../helpers/arch-sign.js';
import { arm64Runner, compileArm64Harness, MODULE_FILE, pkcs11jsArm64, PREBUILT_ADDON, prebuildsFor } from '../helpers/cross-build.js';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.js';
import { NODE_20_ARM64, NODE_22_X64, nodeBinary, startDaemonWith, type ForeignDaemon } from '../helpers/node-dist.js';
import { mappedFiles, signOnce } from '../helpers/package-tree.js';
import { describeRun, runCommand } from '../helpers/run.js';
import { testKey, testToken } from '../helpers/token.js';

const root = join(import.meta.dirname, '..', '..');
const cleanup: Array<() => unknown> = [];
let work: string;

beforeAll(() => {
  work = realpathSync(mkdtempSync(join(tmpdir(), 'sb-nodes-')));
});
afterAll(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
  rmSync(work, { recursive: true, force: true });
});

/**
 * An installed-looking package for `tuple`: lib/ and package.json of this checkout, the
 * prebuilds from the cache, node_modules linking to this checkout's — except `replace`d entries.
 */
function packageTree(name: string, tuple: string, prebuilt: string, replace: Record<string, { link?: string; copy?: string }> = {}): string {
  const dir = join(work, name);
  cpSync(join(root, 'lib'), join(dir, 'lib'), { recursive: true });
  cpSync(join(root, 'package.json'), join(dir, 'package.json'));
  cpSync(prebuilt, join(dir, 'prebuilds', tuple), { recursive: true });
  const nm = join(dir, 'node_modules');
  mkdirSync(nm);
  for (const e of readdirSync(join(root, 'node_modules'))) {
    const r = replace[e];
    if (r?.copy) cpSync(r.copy, join(nm, e), { recursive: true });
    else symlinkSync(r?.link ?? join(root, 'node_modules', e), join(nm, e));
  }
  return dir;
}

describe('Node 22 on x64', () => {
  it('runs the daemon with the prebuilt addon; a signature through the prebuilt module verifies', async () => {
    const node = await nodeBinary(NODE_22_X64);
    const v = await runCommand(node, ['--version']);
    expect(v.stdout.trim()).toBe(`v${NODE_22_X64.version}`);
    const prebuilt = await prebuildsFor('linux-x64');
    const tree = packageTree('x64-node22', 'linux-x64', prebuilt);
    const cli = join(tree, 'lib', 'cli', 'index.js');

    const mp = await runCommand(node, [cli, 'module-path']);
    expect(mp.status, describeRun(mp)).toBe(0);
    const module = join(tree, 'prebuilds', 'linux-x64', MODULE_FILE);
    expect(mp.stdout).toBe(`${module}\n`);

    const t = testToken();
    const sockDir = mkdtempSync(join(tmpdir(), 'sbn-'));
    cleanup.push(() => rmSync(sockDir, { recursive: true, force: true }));
    const d = await startDaemonWith(
      [node], cli, ['--backend', 'pkcs11', '--pkcs11-library', t.library, '--token-label', t.tokenLabel, '--pin-file', t.pinFile],
      join(sockDir, 's.sock'), join(work, 'node22-daemon.log'), { SOFTHSM2_CONF: t.softhsmConf },
    );
    cleanup.push(d.stop);
    expect(readlinkSync(`/proc/${d.pid}/exe`)).toBe(realpathSync(node));
    expect(mappedFiles(d.pid)).toContain(join(tree, 'prebuilds', 'linux-x64', PREBUILT_ADDON));

    const s = signOnce(module, d.socket, testKey('ec-p256'));
    expect(s.mapped).toBe(true);
    expect(s.verified).toBe(true);
  }, 900_000);
});

describe('Node 20 on arm64 under qemu-user', () => {
  let emu: TestEmulator;
  let daemon: ForeignDaemon;
  let module: string;
  let harness: string;
  let ca: X509Certificate;
  let node: string;
  let addon: string;

  beforeAll(async () => {
    const runner = arm64Runner();
    const [prebuilt, pkcs11js] = [await prebuildsFor('linux-arm64'), await pkcs11jsArm64()];
    node = await nodeBinary(NODE_20_ARM64);
    // graphene-pk11 is copied, not linked, so its require('pkcs11js') finds the arm64 build
    const tree = packageTree('arm64-node20', 'linux-arm64', prebuilt, {
      pkcs11js: { link: pkcs11js },
      'graphene-pk11': { copy: join(root, 'node_modules', 'graphene-pk11') },
    });
    module = join(tree, 'prebuilds', 'linux-arm64', MODULE_FILE);
    addon = join(tree, 'prebuilds', 'linux-arm64', PREBUILT_ADDON);
    harness = join(work, 'arch_sign');
    compileArm64Harness('arch_sign.c', harness);

    emu = await startTestEmulator();
    cleanup.push(() => emu.stop());
    ca = new X509Certificate(readFileSync(emu.env.SIGNBRIDGE_STM_CA_FILE!));
    const sockDir = mkdtempSync(join(tmpdir(), 'sbq-'));
    cleanup.push(() => rmSync(sockDir, { recursive: true, force: true }));
    daemon = await startDaemonWith(
      [...runner, node], join(tree, 'lib', 'cli', 'index.js'), ['--backend', 'stm', '--log-level', 'debug'],
      join(sockDir, 's.sock'), join(work, 'arm64-daemon.log'),
      { SM_HOST: emu.env.SM_HOST, SM_CLIENT_CERT_FILE: emu.env.SM_CLIENT_CERT_FILE, SM_CLIENT_CERT_PASSWORD: emu.env.SM_CLIENT_CERT_PASSWORD, SIGNBRIDGE_STM_CA_FILE: emu.env.SIGNBRIDGE_STM_CA_FILE },
      240_000,
    );
    cleanup.push(daemon.stop);
    // qemu-user maps the guest's files into its own process: the arm64 addon is really loaded
    expect(mappedFiles(daemon.pid)).toContain(addon);
  }, 1_800_000);

  it('the arm64 addon throws and catches C++ exceptions (libstdc++ linked in, the system libgcc_s unwinds)', async () => {
    const r = await runCommand(arm64Runner()[0]!, [...arm64Runner().slice(1), node, '-e', `try { require(${JSON.stringify(addon)}).peerCredentials(987654) } catch (e) { console.log(process.arch, e.code) }`], { timeoutMs: 120_000 });
    expect(r.status, describeRun(r)).toBe(0);
    expect(r.stdout.trim()).toBe('arm64 SIGNBRIDGE_ERR_PEERCRED');
  }, 180_000);

  for (const [label, kind] of [['codesign-ec', 'ec'], ['codesign-rsa', 'rsa']] as const) {
    it(`an aarch64 harness signs with ${label} through the arm64 module and the arm64 daemon`, async () => {
      const s = await archSign(arm64Runner(), harness, module, label, kind, { SIGNBRIDGE_SOCKET: daemon.socket, SIGNBRIDGE_DEBUG: '1' });
      expect(s.arch).toBe('aarch64');
      expect(s.cert.verify(ca.publicKey), 'the certificate was issued by the emulator CA').toBe(true);
      expect(s.cert.subject).toContain(`CN=${label}`);
      expect(verifies(s, s.cert, kind)).toBe(true);
      // the peer-uid check ran in the arm64 addon: the daemon logged this connection's peer
      expect(daemon.output()).toMatch(new RegExp(`"peerUid":${process.getuid!()}`));
    }, 300_000);
  }
});
