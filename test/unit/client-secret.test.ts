// The client-secret policy on its own (src/daemon/client-auth.ts, protocol.md "LOGIN"), with a
// test clock: match, mismatch, user type, the per-uid rate limit and its window, and that the
// log lines never hold the PIN. Over a real socket and daemon: test/e2e/client-secret.test.ts.
import { writeFileSync, mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { CKR_PIN_INCORRECT, CKR_PIN_LOCKED } from '../../src/core/pkcs11.js';
import { ClientSecret, CKR_USER_TYPE_INVALID } from '../../src/daemon/client-auth.js';
import { readClientSecretFile } from '../../src/daemon/secrets.js';
import type { PeerInfo } from '../../src/daemon/server.js';

const SECRET = 'unit-client-secret-5b8e1a';
const lines: string[] = [];
const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(s) });
const peer = (uid: number): PeerInfo => ({ pid: 100 + uid, uid, gid: uid, exe: '/usr/bin/node' });
const login = (pin: string, userType = 1n) => ({ slot_id: 0, user_type: userType, pin: Buffer.from(pin) });

const dir = mkdtempSync(join(tmpdir(), 'sb-cs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ClientSecret', () => {
  it('accepts the secret, refuses anything else (also a prefix or a longer string) with CKR_PIN_INCORRECT', () => {
    const g = new ClientSecret(Buffer.from(SECRET));
    expect(g.login(login(SECRET), peer(1), log).rv).toBe(0);
    for (const wrong of ['', SECRET.slice(0, -1), `${SECRET}x`, SECRET.toUpperCase()]) {
      const r = g.login(login(wrong), peer(2), log);
      expect(r.rv).toBe(CKR_PIN_INCORRECT);
      expect(r.message).toMatch(/--client-secret-file/);
    }
  });

  it('a user type other than CKU_USER is CKR_USER_TYPE_INVALID and does not count as a failure', () => {
    const g = new ClientSecret(Buffer.from(SECRET));
    for (let i = 0; i < 10; i++) expect(g.login(login(SECRET, 0n), peer(1), log).rv).toBe(CKR_USER_TYPE_INVALID);
    expect(g.login(login(SECRET), peer(1), log).rv).toBe(0);
  });

  it('5 failures within 60 s lock that uid (even the right PIN) until the window passed; other uids are not affected', () => {
    let now = 1_000_000;
    const g = new ClientSecret(Buffer.from(SECRET), { now: () => now });
    for (let i = 0; i < 5; i++) {
      expect(g.login(login(`wrong-${i}`), peer(7), log).rv).toBe(CKR_PIN_INCORRECT);
      now += 1000;
    }
    const locked = g.login(login(SECRET), peer(7), log);
    expect(locked.rv).toBe(CKR_PIN_LOCKED);
    expect(locked.message).toMatch(/wait \d+ s/);
    expect(g.login(login(SECRET), peer(8), log).rv).toBe(0); // another uid
    now += 55_000; // first failure at t0, now t0+60 s: it left the window, 4 remain
    expect(g.login(login(SECRET), peer(7), log).rv).toBe(0);
    // success cleared the count: 4 more failures do not lock
    for (let i = 0; i < 4; i++) expect(g.login(login('nope'), peer(7), log).rv).toBe(CKR_PIN_INCORRECT);
    expect(g.login(login(SECRET), peer(7), log).rv).toBe(0);
  });

  it('wipes the secret it was given and never logs a PIN', () => {
    const buf = Buffer.from(SECRET);
    const g = new ClientSecret(buf);
    expect(buf.every((b) => b === 0)).toBe(true);
    g.login(login('a-wrong-pin-3c9d'), peer(3), log);
    g.login(login(SECRET), peer(3), log);
    const text = lines.join('');
    expect(text).toMatch(/LOGIN refused: wrong client secret/);
    for (const s of [SECRET, 'a-wrong-pin-3c9d', Buffer.from(SECRET).toString('hex'), Buffer.from(SECRET).toString('base64')]) expect(text).not.toContain(s);
  });
});

describe('readClientSecretFile', () => {
  it('reads a 0600 file (one trailing newline stripped) and refuses a group/world-readable one naming the file and chmod 600', () => {
    const f = join(dir, 'secret');
    writeFileSync(f, `${SECRET}\n`, { mode: 0o600 });
    expect(readClientSecretFile(f).toString()).toBe(SECRET);
    chmodSync(f, 0o640);
    let err: Error | undefined;
    try {
      readClientSecretFile(f);
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).toContain(`chmod 600 ${f}`);
    expect(err?.message).toContain('mode 0640');
    expect(err?.message).not.toContain(SECRET);
    writeFileSync(join(dir, 'empty'), '\n', { mode: 0o600 });
    expect(() => readClientSecretFile(join(dir, 'empty'))).toThrow(/empty/);
    expect(() => readClientSecretFile(join(dir, 'missing'))).toThrow(/ENOENT: check the path/);
  });
});
