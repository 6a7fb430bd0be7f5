// OpenSSH pieces for test/e2e/openssh.test.ts: an sshd of the test's own on 127.0.0.1 (own config,
// host key and authorized_keys in a temp dir), an ssh-agent in the foreground, and public keys
// converted by ssh-keygen itself from the token's certificates (never from signbridge's output).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { publicKeyFromCert, requireCommand, runOk, waitFor } from './consumer-tools.js';

/** "<type> <base64>" of a certificate's public key, as ssh-keygen -i -m PKCS8 converts it. */
export async function sshKeyOfCert(certPath: string, dir: string, name: string): Promise<string> {
  const pem = await publicKeyFromCert(certPath, dir, name);
  const r = await runOk('ssh-keygen', ['-i', '-m', 'PKCS8', '-f', pem]);
  return keyPart(r.stdout);
}

/** The "<type> <base64>" of an OpenSSH public key line (drops the comment). */
export function keyPart(line: string): string {
  return line.trim().split(/\s+/).slice(0, 2).join(' ');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/** /usr/sbin/sshd (not on a non-root PATH), or the apt-get line that installs it. */
export function sshdPath(): string {
  return existsSync('/usr/sbin/sshd') ? '/usr/sbin/sshd' : requireCommand('sshd', 'openssh-server');
}

export interface Sshd {
  port: number;
  /** known_hosts line for this server's host key */
  knownHosts: string;
  /** the file sshd reads as AuthorizedKeysFile (rewritten by tests between logins) */
  authorizedKeys: string;
  log(): string;
  stop(): Promise<void>;
}

/** sshd -D -e on 127.0.0.1:<free port>, public-key logins only, for the current user (root in CI). */
export async function startSshd(dir: string): Promise<Sshd> {
  const sshd = sshdPath(); // absolute: sshd re-executes itself
  // privilege separation directory (Debian creates it in the service unit, not the package)
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  mkdirSync(dir, { recursive: true });
  const hostKey = join(dir, 'host_key');
  await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'test sshd', '-f', hostKey]);
  const authorizedKeys = join(dir, 'authorized_keys');
  writeFileSync(authorizedKeys, '');
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      'ListenAddress 127.0.0.1',
      `Port ${port}`,
      `HostKey ${hostKey}`,
      'PidFile none',
      'StrictModes no', // the temp dir's modes are not a user's home
      `AuthorizedKeysFile ${authorizedKeys}`,
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      '',
    ].join('\n'),
  );
  let log = '';
  const child = spawn(sshd, ['-D', '-e', '-f', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (log += d.toString('utf8')));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString('utf8')));
  const up = await waitFor(() => log.includes('Server listening on') || child.exitCode !== null, 10_000);
  if (!up || !log.includes('Server listening on')) {
    await stopChild(child);
    throw new Error(`sshd did not start:\n${log}`);
  }
  const hostPub = readFileSync(`${hostKey}.pub`, 'utf8');
  return {
    port,
    knownHosts: `[127.0.0.1]:${port} ${keyPart(hostPub)}\n`,
    authorizedKeys,
    log: () => log,
    stop: () => stopChild(child),
  };
}

export interface Agent {
  socket: string;
  stop(): Promise<void>;
}

/**
 * ssh-agent -D (foreground, so the test owns its pid) allowing `module` as a PKCS#11 provider.
 * `env` must carry SIGNBRIDGE_SOCKET: the agent's ssh-pkcs11-helper loads the module, not ssh-add.
 */
export async function startAgent(dir: string, module: string, env: NodeJS.ProcessEnv): Promise<Agent> {
  mkdirSync(dir, { recursive: true });
  const socket = join(dir, 'agent.sock');
  const child = spawn(requireCommand('ssh-agent', 'openssh-client'), ['-D', '-a', socket, '-P', module], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  await waitFor(() => out.includes('SSH_AUTH_SOCK') || child.exitCode !== null, 10_000);
  if (!out.includes('SSH_AUTH_SOCK') || child.exitCode !== null) {
    await stopChild(child);
    throw new Error(`ssh-agent did not start:\n${out}`);
  }
  return { socket, stop: () => stopChild(child) };
}

/** The ```sh blocks of a Markdown file, in order. */
export function shBlocks(markdown: string): string[] {
  return Array.from(markdown.matchAll(/```sh\n([\s\S]*?)```/g), (m) => m[1]!);
}
