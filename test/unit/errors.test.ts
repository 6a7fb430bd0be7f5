import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readPin } from '../../src/backends/pkcs11/pin.js';
import { ERRORS, SignbridgeError, ckrOf, sbError, type ErrorCode } from '../../src/core/errors.js';
import { ckrName } from '../../src/core/pkcs11.js';
import { resolveConfig } from '../../src/daemon/config.js';
import { exitCodeFor, EXIT } from '../../src/daemon/index.js';

const dir = mkdtempSync(join(tmpdir(), 'sb-errors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Every parameter filled with a recognisable marker, to see the message uses them all.
function sample(code: ErrorCode): SignbridgeError {
  const params = new Proxy({}, { get: (_t, k) => `<${String(k)}>` });
  return sbError(code, params as never);
}

describe('error catalogue', () => {
  const codes = Object.keys(ERRORS) as ErrorCode[];

  it('has stable SIGNBRIDGE_ERR_* codes, each with a known CK_RV', () => {
    expect(codes.length).toBeGreaterThan(15);
    for (const c of codes) {
      expect(c).toMatch(/^SIGNBRIDGE_ERR_[A-Z0-9_]+$/);
      expect(ckrName(ERRORS[c].ckr)).not.toMatch(/0x/); // a named CKR_*, not a stray number
    }
  });

  it('messages are sentences that say what to do next, built only from their parameters', () => {
    for (const c of codes) {
      const e = sample(c);
      expect(e).toBeInstanceOf(Error);
      expect(e.code).toBe(c);
      expect(e.message).not.toMatch(/undefined|\[object/);
      expect(e.message.length).toBeGreaterThan(20);
      // guidance: an imperative, a command, a flag, or an environment variable
      const actionable = /(: |; )|\b(run|start|set|check|use|pass|give|remove|stop|upgrade|update|rebuild|pick|see|re-read|choose|restart)\b/i;
      expect([c, actionable.test(e.message)]).toEqual([c, true]);
    }
  });

  it('ckr: the catalogue value, overridable by a token CK_RV; ckrOf() for anything else', () => {
    expect(sbError('SIGNBRIDGE_ERR_KEY_NOT_FOUND', { handle: 'ab' }).ckr).toBe(0x60);
    expect(sbError('SIGNBRIDGE_ERR_TOKEN', { op: 'C_Sign', rv: 'CKR_X' }, { ckr: 0x32 }).ckr).toBe(0x32);
    expect(ckrOf(new Error('x'))).toBe(0x6);
    expect(ckrOf(sbError('SIGNBRIDGE_ERR_DATA_LEN', { detail: '' }))).toBe(0x21);
  });

  it('exit codes follow the documented table', () => {
    expect(exitCodeFor(sample('SIGNBRIDGE_ERR_CONFIG'))).toBe(EXIT.CONFIG);
    expect(exitCodeFor(sample('SIGNBRIDGE_ERR_PIN_INCORRECT'))).toBe(EXIT.BACKEND);
    expect(exitCodeFor(sample('SIGNBRIDGE_ERR_DAEMON_RUNNING'))).toBe(EXIT.SOCKET);
    expect(exitCodeFor(new Error('boom'))).toBe(EXIT.FAILURE);
  });
});

describe('PIN sources', () => {
  const PIN = 's3cret-PIN-9731';

  it('reads a 0600 PIN file (trailing newline dropped), else SIGNBRIDGE_PIN', () => {
    const f = join(dir, 'pin-ok');
    writeFileSync(f, PIN + '\n', { mode: 0o600 });
    expect(readPin({ pinFile: f, env: {} })).toBe(PIN);
    expect(readPin({ env: { SIGNBRIDGE_PIN: PIN } })).toBe(PIN);
    expect(readPin({ pinFile: f, env: { SIGNBRIDGE_PIN: 'other' } })).toBe(PIN); // the explicit file wins
  });

  it('refuses a group/world-readable PIN file with the chmod to run, never echoing the PIN', () => {
    const f = join(dir, 'pin-open');
    writeFileSync(f, PIN);
    chmodSync(f, 0o644);
    let err: SignbridgeError | undefined;
    try {
      readPin({ pinFile: f, env: {} });
    } catch (e) {
      err = e as SignbridgeError;
    }
    expect(err?.code).toBe('SIGNBRIDGE_ERR_PIN_FILE');
    expect(err?.message).toContain(`chmod 600 ${f}`);
    expect(err?.message).not.toContain(PIN);
    expect(JSON.stringify(err)).not.toContain(PIN);
  });

  it('no PIN at all: says where a PIN may come from', () => {
    expect(() => readPin({ env: {} })).toThrow(/SIGNBRIDGE_PIN or pass --pin-file/);
    expect(() => readPin({ pinFile: join(dir, 'missing'), env: {} })).toThrow(/ENOENT/);
  });
});

describe('daemon configuration', () => {
  it('flags win over the environment, which wins over the config file; relative paths follow the file', () => {
    const cfgFile = join(dir, 'cfg.json');
    writeFileSync(cfgFile, JSON.stringify({ 'pkcs11-library': 'lib/x.so', 'token-label': 'file', socket: 'file.sock', 'log-level': 'warn', 'pin-file': 'pin' }));
    const c = resolveConfig({ config: cfgFile, 'token-label': 'flag' }, { SIGNBRIDGE_SOCKET: '/run/env.sock' });
    expect(c.pkcs11.tokenLabel).toBe('flag');
    expect(c.socket).toBe('/run/env.sock');
    expect(c.logLevel).toBe('warn');
    expect(c.pkcs11.library).toBe(join(dir, 'lib/x.so'));
    expect(c.pkcs11.pinFile).toBe(join(dir, 'pin'));
    expect(resolveConfig({ config: cfgFile, socket: '/flag.sock' }, { SIGNBRIDGE_SOCKET: '/env.sock' }).socket).toBe('/flag.sock');
  });

  it('defaults the socket per design.md', () => {
    const c = resolveConfig({ 'pkcs11-library': '/l.so' }, { XDG_RUNTIME_DIR: '/run/user/7' });
    expect(c.socket).toBe('/run/user/7/signbridge/signbridge.sock');
    expect(resolveConfig({ 'pkcs11-library': '/l.so' }, {}).socket).toMatch(/^\/tmp\/signbridge-\d+\/signbridge\.sock$/);
  });

  it('rejects a PIN in the config, unknown keys, bad values, a missing library', () => {
    const f = (o: object): string => {
      const p = join(dir, `c${Math.random()}.json`);
      writeFileSync(p, JSON.stringify(o));
      return p;
    };
    expect(() => resolveConfig({ config: f({ pin: '1234', 'pkcs11-library': '/l' }) }, {})).toThrow(/never read from the config/);
    expect(() => resolveConfig({ config: f({ 'token-lable': 'x' }) }, {})).toThrow(/unknown key "token-lable"/);
    expect(() => resolveConfig({ 'pkcs11-library': '/l', 'log-level': 'loud' }, {})).toThrow(/--log-level/);
    expect(() => resolveConfig({ 'pkcs11-library': '/l', 'slot-index': '-1' }, {})).toThrow(/--slot-index/);
    expect(() => resolveConfig({}, {})).toThrow(/--pkcs11-library/);
    expect(() => resolveConfig({ backend: 'hsm', 'pkcs11-library': '/l' }, {})).toThrow(/unknown --backend/);
    const e = (() => {
      try {
        resolveConfig({ config: join(dir, 'nope.json') }, {});
      } catch (x) {
        return x as SignbridgeError;
      }
    })();
    expect(e?.code).toBe('SIGNBRIDGE_ERR_CONFIG');
  });
});
