// `signbridge daemon` as a user runs it: configured only by a JSON file, the PIN only from
// SIGNBRIDGE_PIN; `signbridge keys` against it; SIGTERM stops it cleanly. Its whole log is then
// searched for the PIN.
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { waitForDaemon } from '../../src/ipc/client.js';
import { cliPath } from '../../src/demo/daemon-process.js';
import { runCommand, describeRun } from '../helpers/run.js';
import { testToken } from '../helpers/token.js';

const dir = mkdtempSync(join(tmpdir(), 'sb-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('signbridge daemon from a config file, PIN from SIGNBRIDGE_PIN', () => {
  it('serves the token, `signbridge keys` lists it, SIGTERM stops it and removes the socket', async () => {
    const t = testToken();
    const pin = readFileSync(t.pinFile, 'utf8').trim();
    const socket = join(dir, 'd.sock');
    const config = join(dir, 'signbridge.json');
    writeFileSync(
      config,
      JSON.stringify({ backend: 'pkcs11', 'pkcs11-library': t.library, 'token-label': t.tokenLabel, socket: 'd.sock', 'log-level': 'debug' }),
    );
    const env: NodeJS.ProcessEnv = { ...process.env, SOFTHSM2_CONF: t.softhsmConf, SIGNBRIDGE_PIN: pin };
    delete env.SIGNBRIDGE_SOCKET;
    const daemon = spawn(process.execPath, [cliPath(), 'daemon', '--config', config], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    daemon.stdout.on('data', (d: Buffer) => (log += d.toString()));
    daemon.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((r) => daemon.on('exit', (code) => r(code)));
    try {
      await waitForDaemon(socket, 20_000);
      expect(daemon.spawnargs.join(' ')).not.toContain(pin);

      const keys = await runCommand(process.execPath, [cliPath(), 'keys', '--json', '--socket', socket]);
      expect(keys.status, describeRun(keys)).toBe(0);
      const listed = JSON.parse(keys.stdout) as Array<Record<string, string>>;
      expect(listed.map((k) => k.label).sort()).toEqual(['ec-p256', 'rsa-3072']);
      for (const k of listed) {
        const cert = new X509Certificate(t.keys.find((x) => x.label === k.label)!.certPem);
        expect(k.uri).toBe(`pkcs11:token=${t.tokenLabel};id=%${k.id!.toUpperCase()};object=${k.label};type=private`);
        expect(k.algorithm).toBe(k.label === 'rsa-3072' ? 'RSA-3072' : 'EC P-256');
        expect(new Date(k.notAfter!).getTime()).toBe(new Date(cert.validTo).getTime());
        expect(k.subject).toContain(`CN=signbridge ${k.label}`);
      }
      const text = await runCommand(process.execPath, [cliPath(), 'keys', '--socket', socket]);
      expect(text.stdout).toContain(`uri: pkcs11:token=${t.tokenLabel};id=%01;object=rsa-3072;type=private`);
    } finally {
      daemon.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(existsSync(socket)).toBe(false);
    const lines = log.trim().split('\n');
    expect(lines.some((l) => l.includes('"msg":"listening"'))).toBe(true);
    expect(lines.some((l) => l.includes('"msg":"stopped"'))).toBe(true);
    for (const l of lines) expect(() => JSON.parse(l), l).not.toThrow();
    expect(log).not.toContain(pin);
  });

  it('a wrong PIN stops the daemon with exit 3 and a message that does not contain the PIN', async () => {
    const t = testToken();
    const wrong = 'wrong-pin-7f3a9c';
    const r = await runCommand(
      process.execPath,
      [cliPath(), 'daemon', '--backend', 'pkcs11', '--pkcs11-library', t.library, '--token-label', t.tokenLabel, '--socket', join(dir, 'w.sock')],
      { env: { ...process.env, SOFTHSM2_CONF: t.softhsmConf, SIGNBRIDGE_PIN: wrong } },
    );
    expect(r.status, describeRun(r)).toBe(3);
    expect(`${r.stdout}${r.stderr}`).toMatch(/PIN/);
    expect(`${r.stdout}${r.stderr}`).not.toContain(wrong);
  });
});
