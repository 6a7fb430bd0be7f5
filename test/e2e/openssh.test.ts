// OpenSSH 9.2 and git → libsignbridge-pkcs11.so → signbridge daemon → SoftHSMv2 ("signbridge-matrix").
// OpenSSH opens every session read-write (CKF_RW_SESSION), so these are the tests of signbridge's
// R/W sessions too. Every signature is checked by OpenSSH itself: ssh-keygen -Y verify, git
// verify-commit (which runs ssh-keygen) and a real sshd on 127.0.0.1 accepting a public-key login;
// the expected public keys come from the token's certificates, converted by ssh-keygen.
// docs/recipes/openssh.md is run as written (its sh blocks, in order, as one bash script).
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliPath } from '../../src/demo/daemon-process.js';
import { packageRoot } from '../../src/native/loader.js';
import { requireCommand, runOk, signedInLog, waitFor } from '../helpers/consumer-tools.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { signbridgeModule } from '../helpers/module.js';
import { keyPart, shBlocks, sshdPath, sshKeyOfCert, startAgent, startSshd, type Agent, type Sshd } from '../helpers/openssh.js';
import { describeRun, runCommand } from '../helpers/run.js';
import { testToken } from '../helpers/token.js';

const user = userInfo().username; // root in CI: sshd's PermitRootLogin prohibit-password allows keys
let daemon: TestDaemon;
let sshd: Sshd;
let agent: Agent | undefined;
let work: string;
let env: NodeJS.ProcessEnv;
let module: string;
/** label → "<type> <base64>" for every key OpenSSH 9.2 can use (RSA, ECDSA), from the certificates */
const expected = new Map<string, string>();

const sshKeys = () => testToken('matrix').keys.filter((k) => k.type !== 'ed25519');

/** ssh-keygen -Y verify reads the message from stdin; runCommand gives none, so a shell redirects. */
function verifyFile(allowed: string, principal: string, sig: string, msg: string) {
  return runCommand('sh', ['-c', 'exec ssh-keygen -Y verify -f "$1" -I "$2" -n file -s "$3" < "$4"', 'sh', allowed, principal, sig, msg], { env });
}

beforeAll(async () => {
  for (const [cmd, pkg] of [['ssh', 'openssh-client'], ['ssh-keygen', 'openssh-client'], ['ssh-agent', 'openssh-client'],
    ['ssh-add', 'openssh-client'], ['git', 'git']] as const) requireCommand(cmd, pkg);
  sshdPath();
  module = signbridgeModule();
  work = mkdtempSync(join(tmpdir(), 'sb-ssh-'));
  daemon = await startTestDaemon({ token: 'matrix', extraArgs: ['--log-level', 'debug'] });
  const home = join(work, 'home');
  mkdirSync(home);
  env = {
    ...process.env,
    ...daemon.env,
    HOME: home, // git's config; ssh reads the passwd entry, hence -F /dev/null below
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: 'signbridge test', GIT_AUTHOR_EMAIL: 'release@example.com',
    GIT_COMMITTER_NAME: 'signbridge test', GIT_COMMITTER_EMAIL: 'release@example.com',
  };
  delete env.SSH_AUTH_SOCK; // never the caller's agent
  delete env.DISPLAY;
  for (const k of sshKeys()) expected.set(k.label, await sshKeyOfCert(k.certPath, work, k.label));
  sshd = await startSshd(join(work, 'sshd'));
});

afterAll(async () => {
  await agent?.stop();
  await sshd?.stop();
  await daemon?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('OpenSSH through signbridge (R/W sessions)', () => {
  it('ssh-keygen -D lists every RSA and ECDSA key of the token, each the key of its certificate', async () => {
    const r = await runOk('ssh-keygen', ['-D', module], env);
    const listed = r.stdout.trim().split('\n');
    expect(listed.map(keyPart).sort(), r.stdout).toEqual([...expected.values()].sort());
    for (const line of listed) {
      const label = line.trim().split(/\s+/)[2]!; // the comment is CKA_LABEL
      expect(keyPart(line), label).toBe(expected.get(label));
      writeFileSync(join(work, `${label}.pub`), `${line.trim()}\n`);
    }
    // OpenSSH 9.x has no PKCS#11 Ed25519 (docs/recipes/openssh.md): the key is skipped, not an error
    const v = (await runCommand('ssh', ['-V'], { env })).stderr;
    if (/^OpenSSH_9\./.test(v)) expect(r.stderr).toContain('skipping unsupported key type');
  });

  it('ssh-add -s loads the keys into ssh-agent; ssh-keygen -Y sign through it; -Y verify accepts each signature, rejects a changed file', async () => {
    agent = await startAgent(join(work, 'agent'), module, env);
    const askpass = join(work, 'askpass');
    writeFileSync(askpass, '#!/bin/sh\necho any-pin\n'); // the token needs no login: any PIN works
    chmodSync(askpass, 0o700);
    env = { ...env, SSH_AUTH_SOCK: agent.socket };
    await runOk('ssh-add', ['-s', module], { ...env, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force' });
    const inAgent = (await runOk('ssh-add', ['-L'], env)).stdout.trim().split('\n').map(keyPart);
    expect(inAgent.sort()).toEqual([...expected.values()].sort());

    const rsaBefore = signedInLog(daemon.logFile, 'CKM_RSA_PKCS');
    const ecBefore = signedInLog(daemon.logFile, 'CKM_ECDSA');
    for (const k of sshKeys()) {
      const msg = join(work, `release-${k.label}.bin`);
      writeFileSync(msg, randomBytes(10_000));
      const allowed = join(work, `allowed-${k.label}`);
      writeFileSync(allowed, `release@example.com ${expected.get(k.label)}\n`);
      await runOk('ssh-keygen', ['-Y', 'sign', '-f', join(work, `${k.label}.pub`), '-n', 'file', msg], env);
      const good = await verifyFile(allowed, 'release@example.com', `${msg}.sig`, msg);
      expect(good.status, describeRun(good)).toBe(0);
      expect(good.stdout + good.stderr).toContain('Good "file" signature for release@example.com');
      const changed = join(work, `changed-${k.label}.bin`);
      writeFileSync(changed, Buffer.concat([readFileSync(msg), Buffer.from('x')]));
      const bad = await verifyFile(allowed, 'release@example.com', `${msg}.sig`, changed);
      expect(bad.status, `${k.label}: a changed file must not verify\n${describeRun(bad)}`).not.toBe(0);
    }
    // the signatures were made by the daemon (its debug log has one "signed" line per signature)
    const rsa = sshKeys().filter((k) => k.type === 'rsa').length;
    const ec = sshKeys().length - rsa;
    expect(await waitFor(() => signedInLog(daemon.logFile, 'CKM_RSA_PKCS') >= rsaBefore + rsa)).toBe(true);
    expect(await waitFor(() => signedInLog(daemon.logFile, 'CKM_ECDSA') >= ecBefore + ec)).toBe(true);
  });

  it('git commit -S signs with a token key through the agent; git verify-commit accepts it, and refuses another signer', async () => {
    expect(agent, 'the ssh-agent test ran first').toBeDefined();
    const repo = join(work, 'repo');
    await runOk('git', ['init', '-q', repo], env);
    writeFileSync(join(repo, 'README'), 'signed commit\n');
    await runOk('git', ['-C', repo, 'add', 'README'], env);
    for (const label of ['ec-p256', 'rsa-3072']) {
      await runOk('git', ['-C', repo, '-c', 'gpg.format=ssh', '-c', `user.signingkey=${join(work, `${label}.pub`)}`,
        'commit', '-q', '-S', '--allow-empty', '-m', `signed with ${label}`], env);
      const allowed = join(work, `git-allowed-${label}`);
      writeFileSync(allowed, `release@example.com ${expected.get(label)}\n`);
      const ok = await runOk('git', ['-C', repo, '-c', `gpg.ssh.allowedSignersFile=${allowed}`, 'verify-commit', 'HEAD'], env);
      expect(ok.stderr).toContain('Good "git" signature for release@example.com');
      // an allowed-signers file naming another key: the same commit must not verify
      const other = label === 'ec-p256' ? 'ec-p384' : 'rsa-2048';
      writeFileSync(allowed, `release@example.com ${expected.get(other)}\n`);
      const refused = await runCommand('git', ['-C', repo, '-c', `gpg.ssh.allowedSignersFile=${allowed}`, 'verify-commit', 'HEAD'], { env });
      expect(refused.status, describeRun(refused)).not.toBe(0);
    }
  });

  it('ssh -I logs in to a real sshd with the token key, and is refused when authorized_keys holds another key', async () => {
    const knownHosts = join(work, 'known_hosts');
    writeFileSync(knownHosts, sshd.knownHosts);
    const loginEnv = { ...env };
    delete loginEnv.SSH_AUTH_SOCK; // the module itself signs, not the agent
    const ssh = () => runCommand('ssh', ['-F', '/dev/null', '-I', module, '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${knownHosts}`,
      '-p', String(sshd.port), `${user}@127.0.0.1`, 'echo logged in as $(id -un)'], { env: loginEnv, timeoutMs: 60_000 });

    writeFileSync(sshd.authorizedKeys, `${expected.get('rsa-3072')} rsa-3072\n`);
    const fp = (await runOk('ssh-keygen', ['-lf', join(work, 'rsa-3072.pub')], env)).stdout.split(/\s+/)[1]!;
    const ok = await ssh();
    expect(ok.status, describeRun(ok) + `\n--- sshd\n${sshd.log()}`).toBe(0);
    expect(ok.stdout.trim()).toBe(`logged in as ${user}`);
    expect(sshd.log()).toMatch(new RegExp(`Accepted publickey for ${user} from 127\\.0\\.0\\.1 port \\d+ ssh2: RSA ${fp.replace(/[+/]/g, '\\$&')}`));

    await runOk('ssh-keygen', ['-q', '-t', 'ecdsa', '-N', '', '-f', join(work, 'not-on-token')], env);
    writeFileSync(sshd.authorizedKeys, readFileSync(join(work, 'not-on-token.pub')));
    const refused = await ssh();
    expect(refused.status, describeRun(refused)).toBe(255);
    expect(refused.stderr).toContain('Permission denied (publickey)');
  });

  it('docs/recipes/openssh.md runs as written: keys, login, agent, ssh-keygen -Y, git commit signing', async () => {
    const dir = join(work, 'recipe');
    mkdirSync(join(dir, 'bin'), { recursive: true });
    // what a user has after `npm install -g signbridge`: the command on PATH
    writeFileSync(join(dir, 'bin', 'signbridge'), `#!/bin/sh\nexec "${process.execPath}" "${cliPath()}" "$@"\n`);
    chmodSync(join(dir, 'bin', 'signbridge'), 0o755);
    // the files the recipe names: a release file, a repository with a staged change, the pinned host key
    writeFileSync(join(dir, 'release.tar.gz'), randomBytes(20_000));
    await runOk('git', ['init', '-q', join(dir, 'repo')], env);
    writeFileSync(join(dir, 'repo', 'CHANGES'), 'v1\n');
    await runOk('git', ['-C', join(dir, 'repo'), 'add', 'CHANGES'], env);
    writeFileSync(join(dir, 'known_hosts'), sshd.knownHosts);
    writeFileSync(sshd.authorizedKeys, `${expected.get('rsa-3072')} rsa-3072\n`);
    const accepted = (sshd.log().match(/Accepted publickey/g) ?? []).length;

    const blocks = shBlocks(readFileSync(join(packageRoot(), 'docs', 'recipes', 'openssh.md'), 'utf8'));
    expect(blocks.length).toBeGreaterThanOrEqual(6);
    // harness only: stop the recipe's agent even if a step fails
    const script = ['set -euo pipefail', `trap 'kill "\${SSH_AGENT_PID:-}" 2>/dev/null || true' EXIT`,
      ...blocks.flatMap((b, i) => [`echo '--- recipe block ${i + 1}' >&2`, b])].join('\n');
    const recipeEnv: NodeJS.ProcessEnv = { ...env, PATH: `${join(dir, 'bin')}:${env.PATH}`, SERVER: `${user}@127.0.0.1`, PORT: String(sshd.port) };
    delete recipeEnv.SSH_AUTH_SOCK;
    delete recipeEnv.SSH_AGENT_PID;
    const r = await runCommand('bash', ['-c', script], { env: recipeEnv, cwd: dir, timeoutMs: 120_000 });
    expect(r.status, describeRun(r) + `\n--- sshd\n${sshd.log()}`).toBe(0);
    expect(r.stdout + r.stderr).toContain('Good "file" signature for release@example.com');
    expect(r.stdout + r.stderr).toContain('Good "git" signature for release@example.com');
    expect((sshd.log().match(/Accepted publickey/g) ?? []).length).toBe(accepted + 1);
    expect(keyPart(readFileSync(join(dir, 'ec-p256.pub'), 'utf8'))).toBe(expected.get('ec-p256'));
    expect(existsSync(join(dir, 'release.tar.gz.sig'))).toBe(true);
    const log = await runOk('git', ['-C', join(dir, 'repo'), 'log', '-1', '--format=%s'], env);
    expect(log.stdout.trim()).toBe('signed through signbridge');
  });
});
