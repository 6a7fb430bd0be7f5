// `signbridge keys --recipes`: the printed command lines are run exactly as printed (bash, in a
// directory holding app.exe, app.jar and file), and each signature is checked by a verifier that is
// not signbridge: osslsigncode verify, jarsigner -verify, openssl dgst -verify, node:crypto.
import { constants, verify as cryptoVerify, X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/native/loader.js';
import { requireCommand } from '../helpers/consumer-tools.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { signbridgeModule, unsignedPe } from '../helpers/module.js';
import { describeRun, runCommand } from '../helpers/run.js';
import { testKey } from '../helpers/token.js';

const KEYS = ['rsa-3072', 'ec-p256'] as const;
let d: TestDaemon;
let work: string;

const cli = (args: string[]) => runCommand(process.execPath, [join(packageRoot(), 'lib', 'cli', 'index.js'), ...args], { env: { ...process.env, ...d.env } });

/** The printed block of one key: the commands after its "# <label>:" line, up to the blank line. */
function blockOf(output: string, label: string): string {
  const blocks = output.split('\n\n');
  const b = blocks.find((x) => x.startsWith(`# ${label}:`));
  if (!b) throw new Error(`no recipe block for ${label} in:\n${output}`);
  return b;
}

/** Runs a printed block with bash in a fresh directory holding the inputs; returns that directory. */
async function runBlock(tool: string, label: string, block: string): Promise<string> {
  const dir = join(work, `${tool}-${label}`);
  mkdirSync(dir);
  copyFileSync(unsignedPe(), join(dir, 'app.exe'));
  copyFileSync(join(work, 'app.jar'), join(dir, 'app.jar'));
  copyFileSync(join(work, 'file'), join(dir, 'file'));
  const r = await runCommand('bash', ['-euo', 'pipefail', '-c', block], { env: { ...process.env, ...d.env }, cwd: dir });
  expect(r.status, `${block}\n${describeRun(r)}`).toBe(0);
  return dir;
}

async function recipesFor(tool: string): Promise<string> {
  const r = await cli(['keys', '--recipes', '--tool', tool]);
  expect(r.status, describeRun(r)).toBe(0);
  expect(r.stdout).toContain(signbridgeModule());
  return r.stdout;
}

beforeAll(async () => {
  for (const [cmd, pkg] of [['osslsigncode', 'osslsigncode'], ['jarsigner', 'openjdk-17-jdk-headless'], ['jar', 'openjdk-17-jdk-headless'], ['openssl', 'openssl'], ['pkcs11-tool', 'opensc'], ['ssh-keygen', 'openssh-client'], ['ssh-agent', 'openssh-client']] as const)
    requireCommand(cmd, pkg);
  work = mkdtempSync(join(tmpdir(), 'sb-recipes-'));
  writeFileSync(join(work, 'file'), `signed through a printed recipe ${Date.now()}\n`);
  writeFileSync(join(work, 'hello.txt'), 'hello\n');
  const jar = await runCommand('jar', ['cf', join(work, 'app.jar'), 'hello.txt'], { cwd: work });
  expect(jar.status, describeRun(jar)).toBe(0);
  d = await startTestDaemon();
});
afterAll(async () => {
  await d?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('signbridge keys --recipes', () => {
  it('without --tool: one block per key with every tool', async () => {
    const r = await cli(['keys', '--recipes']);
    expect(r.status, describeRun(r)).toBe(0);
    for (const label of KEYS) {
      const b = blockOf(r.stdout, label);
      for (const tool of ['osslsigncode sign', 'jarsigner -keystore NONE', 'openssl dgst', 'pkcs11-tool --module', 'ssh-keygen -Y sign']) expect(b).toContain(tool);
    }
  });

  it('osslsigncode: the printed command signs app.exe; osslsigncode verify passes with the key certificate', async () => {
    const out = await recipesFor('osslsigncode');
    for (const label of KEYS) {
      const dir = await runBlock('osslsigncode', label, blockOf(out, label));
      const v = await runCommand('osslsigncode', ['verify', '-in', join(dir, 'app-signed.exe'), '-CAfile', testKey(label).certPath]);
      expect(v.status, describeRun(v)).toBe(0);
      expect(v.stdout).toMatch(/^Signature verification: ok$/m);
    }
  });

  it('jarsigner: the printed commands sign app.jar; jarsigner -verify names the key certificate', async () => {
    const out = await recipesFor('jarsigner');
    for (const label of KEYS) {
      const dir = await runBlock('jarsigner', label, blockOf(out, label));
      const v = await runCommand('jarsigner', ['-verify', '-verbose', '-certs', join(dir, 'app.jar')]);
      expect(v.status, describeRun(v)).toBe(0);
      expect(v.stdout).toContain('jar verified.');
      expect(v.stdout).toContain(`CN=signbridge ${label}`);
    }
  });

  it('openssl (libp11 engine): the printed command signs file; openssl dgst -verify with the certificate key says Verified OK', async () => {
    const out = await recipesFor('openssl');
    for (const label of KEYS) {
      const dir = await runBlock('openssl', label, blockOf(out, label));
      const pub = join(dir, 'pub.pem');
      writeFileSync(pub, new X509Certificate(testKey(label).certPem).publicKey.export({ type: 'spki', format: 'pem' }));
      const v = await runCommand('openssl', ['dgst', '-sha256', '-verify', pub, '-signature', join(dir, 'file.sig'), join(dir, 'file')]);
      expect(v.status, describeRun(v)).toBe(0);
      expect(v.stdout).toContain('Verified OK');
    }
  });

  it('pkcs11-tool: the printed command signs file; node:crypto verifies the signature', async () => {
    const out = await recipesFor('pkcs11-tool');
    for (const label of KEYS) {
      const dir = await runBlock('pkcs11-tool', label, blockOf(out, label));
      const sig = readFileSync(join(dir, 'file.sig'));
      const message = readFileSync(join(dir, 'file'));
      const pub = new X509Certificate(testKey(label).certPem).publicKey;
      const ok =
        label === 'ec-p256'
          ? cryptoVerify('sha256', message, { key: pub, dsaEncoding: 'ieee-p1363' }, sig)
          : cryptoVerify('sha256', message, { key: pub, padding: constants.RSA_PKCS1_PADDING }, sig);
      expect(ok, `${label}: ${sig.length}-byte signature`).toBe(true);
      expect(cryptoVerify('sha256', Buffer.from('another message'), label === 'ec-p256' ? { key: pub, dsaEncoding: 'ieee-p1363' } : pub, sig)).toBe(false);
    }
  });

  it('ssh: the printed commands sign file through ssh-agent; ssh-keygen -Y verify accepts it with the key ssh-keygen -D printed', async () => {
    const out = await recipesFor('ssh');
    for (const label of KEYS) {
      const dir = await runBlock('ssh', label, blockOf(out, label));
      const pub = readFileSync(join(dir, `${label}.pub`), 'utf8').trim();
      expect(pub).toMatch(new RegExp(`^(ssh-rsa|ecdsa-sha2-nistp256) \\S+ ${label}$`));
      // the SSH key is the certificate's key (converted by ssh-keygen itself, not by signbridge)
      const pem = join(dir, 'cert-pub.pem');
      writeFileSync(pem, new X509Certificate(testKey(label).certPem).publicKey.export({ type: 'spki', format: 'pem' }));
      const conv = await runCommand('ssh-keygen', ['-i', '-m', 'PKCS8', '-f', pem]);
      expect(conv.stdout.trim().split(' ').slice(0, 2)).toEqual(pub.split(' ').slice(0, 2));
      writeFileSync(join(dir, 'allowed'), `signer ${pub}\n`);
      const v = await runCommand('bash', ['-c', 'ssh-keygen -Y verify -f allowed -I signer -n file -s file.sig < file'], { cwd: dir });
      expect(v.status, describeRun(v)).toBe(0);
      const bad = await runCommand('bash', ['-c', 'echo changed >> file && ssh-keygen -Y verify -f allowed -I signer -n file -s file.sig < file'], { cwd: dir });
      expect(bad.status).not.toBe(0);
    }
  });

  it('--tool names an unknown tool: exit 2 and the list of tools', async () => {
    const r = await cli(['keys', '--recipes', '--tool', 'signtool']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--tool signtool: not one of osslsigncode, jarsigner, openssl, pkcs11-tool, ssh');
  });
});
