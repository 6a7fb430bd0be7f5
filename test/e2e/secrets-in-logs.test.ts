// README "Security model": secrets (token PINs, the client secret, the STM API key, the PKCS#12
// password — and wrong guesses at them) never appear in logs, error text or argv.
//
// Vitest runs test files in parallel and has no "run this file last" without changing its config,
// so this file does two things:
//  1. it runs its own daemons with every secret-bearing feature at the most verbose log level
//     (pkcs11: PIN file, PIN in the environment, a wrong PIN, the client secret with right and wrong
//     LOGINs; stm: mTLS with a PKCS#12 password, API key from the environment and from a file, a
//     wrong API key, a wrong password, readable secret files), plus a consumer process signing
//     through the module with SIGNBRIDGE_DEBUG=1 — and greps everything they wrote (logs, audit
//     logs, error texts, the consumer's stderr, the daemons' argv) for every secret, raw, hex and base64;
//  2. it greps every daemon log the rest of the suite has written so far (src/demo/daemon-process.ts
//     copies each one into testLogDir()) for the run's token PINs and for any unredacted secret field.
// (1) is complete on its own; (2) covers whatever other files ran before or alongside it.
import { spawnSync } from 'node:child_process';
import { copyFileSync, chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attr } from '../../src/core/objects.js';
import * as C from '../../src/core/pkcs11.js';
import { cliPath, startDaemon, testLogDir, type RunningDaemon } from '../../src/demo/daemon-process.js';
import { DaemonClient } from '../../src/ipc/client.js';
import { CKU_USER, encodeRequest, MAGIC } from '../../src/ipc/protocol.js';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.js';
import { signbridgeModule } from '../helpers/module.js';
import { testToken } from '../helpers/token.js';
import { registerTestSecrets } from '../helpers/secrets.js';

const work = mkdtempSync(join(tmpdir(), 'sb-secrets-'));
/** name → value; names (never values) are what a failure prints */
const secrets = new Map<string, string>();
/** error texts and outputs that are not files */
const texts: Array<{ what: string; text: string }> = [];
const daemons: RunningDaemon[] = [];
let emu: TestEmulator;

const CLIENT_SECRET = `client-secret-${Date.now().toString(36)}-9f2c`;
const WRONG_PIN = 'wrong-guess-at-the-secret-77aa';
const WRONG_TOKEN_PIN = 'wrong-token-pin-5e1d';
const WRONG_API_KEY = 'wrong-api-key-0c3b9e';
const WRONG_P12_PASSWORD = 'wrong-p12-password-4a8f';

function forms(v: string): string[] {
  return [v, Buffer.from(v).toString('hex'), Buffer.from(v).toString('base64').replace(/=+$/, '')];
}

/** "<where>: <secret name> (<form>)" for every hit; never the value itself. */
function hits(where: string, text: string, names: Iterable<string> = secrets.keys()): string[] {
  const out: string[] = [];
  for (const name of names) {
    const v = secrets.get(name)!;
    forms(v).forEach((f, i) => {
      if (text.includes(f)) out.push(`${where}: ${name} (${['raw', 'hex', 'base64'][i]})`);
    });
  }
  return out;
}

// pino lines whose secret-named field holds anything but the redaction marker
const UNREDACTED = /"(pin|userPin|password|apiKey|api_key|x-api-key|authorization|secret|clientSecret)"\s*:\s*"(?!\[redacted\])[^"]+"/i;

function logFilesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...logFilesUnder(p));
    else if (e.isFile() && /\.log(\.\d+)?$/.test(e.name)) out.push(p);
  }
  return out;
}

async function daemon(name: string, opts: Parameters<typeof startDaemon>[0]): Promise<RunningDaemon> {
  const d = await startDaemon(opts);
  daemons.push(d);
  // argv of the running daemon (what `ps` shows every user)
  texts.push({ what: `argv of ${name}`, text: readFileSync(`/proc/${d.pid}/cmdline`, 'utf8').replace(/\0/g, ' ') });
  return d;
}

async function failingDaemon(name: string, opts: Parameters<typeof startDaemon>[0]): Promise<string> {
  const e = await startDaemon(opts).then(
    (d) => {
      daemons.push(d);
      return undefined;
    },
    (x: Error) => x,
  );
  if (!e) throw new Error(`${name}: the daemon started, but it should have refused`);
  texts.push({ what: `start error of ${name}`, text: e.message });
  return e.message;
}

function pkcs11Opts(name: string, extra: Partial<Parameters<typeof startDaemon>[0]> = {}): Parameters<typeof startDaemon>[0] {
  const t = testToken();
  const dir = mkdtempSync(join(work, `${name}-`));
  return {
    socket: join(dir, 's.sock'),
    softhsmConf: t.softhsmConf,
    library: t.library,
    tokenLabel: t.tokenLabel,
    pinFile: t.pinFile,
    logFile: join(dir, 'daemon.log'),
    ...extra,
    extraArgs: ['--log-level', 'trace', ...(extra.extraArgs ?? [])],
  };
}

async function signOnce(socket: string, login?: string): Promise<number> {
  const c = await DaemonClient.connect({ socketPath: socket });
  try {
    if (login !== undefined) await c.request('LOGIN', { slot_id: 0, user_type: BigInt(CKU_USER), pin: Buffer.from(login) }).catch(() => undefined);
    const inv = await c.inventory();
    const o = inv.slots.flatMap((s) => s.objects).find((x) => x.key_handle.length > 0)!;
    const ec = attr(o, C.CKA_KEY_TYPE)!.readBigUInt64LE(0) === BigInt(C.CKK_EC);
    const data = ec ? Buffer.alloc(32, 1) : Buffer.concat([Buffer.from('3031300d060960864801650304020105000420', 'hex'), Buffer.alloc(32, 1)]);
    return await c
      .sign({ key_handle: o.key_handle, mechanism: BigInt(ec ? C.CKM_ECDSA : C.CKM_RSA_PKCS), hash_alg: BigInt(C.CKM_SHA256), mgf: 0n, salt_len: 0, data })
      .then(() => 0, (e: { ckr?: number }) => e.ckr ?? -1);
  } finally {
    c.close();
  }
}

// A consumer signing through the module, PIN from the environment (not argv), SIGNBRIDGE_DEBUG on.
const CONSUMER = `
const pkcs11js = require('pkcs11js');
const p = new pkcs11js.PKCS11();
const rv = (f) => { try { f(); return 'CKR_OK'; } catch (e) { return String(e.message).split(':')[0]; } };
p.load(process.argv[1]);
p.C_Initialize();
const slot = p.C_GetSlotList(true)[0];
const s = p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
const out = { wrong: rv(() => p.C_Login(s, 1, process.env.WRONG_PIN)), right: rv(() => p.C_Login(s, 1, process.env.RIGHT_PIN)) };
p.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_LABEL, value: 'ec-p256' }]);
const [k] = p.C_FindObjects(s, 1);
p.C_FindObjectsFinal(s);
out.found = !!k;
if (k) out.sign = rv(() => { p.C_SignInit(s, { mechanism: pkcs11js.CKM_ECDSA }, k); p.C_Sign(s, Buffer.alloc(32, 2), Buffer.alloc(64)); });
p.C_Finalize();
console.log(JSON.stringify(out));
`;

beforeAll(async () => {
  for (const [name, t] of [['token PIN (softhsm)', testToken()], ['token PIN (matrix)', testToken('matrix')]] as const) {
    secrets.set(name, readFileSync(t.pinFile, 'utf8').trim());
  }
  secrets.set('client secret', CLIENT_SECRET);
  secrets.set('wrong client secret', WRONG_PIN);
  secrets.set('wrong token PIN', WRONG_TOKEN_PIN);
  secrets.set('wrong STM API key', WRONG_API_KEY);
  secrets.set('wrong PKCS#12 password', WRONG_P12_PASSWORD);
  // and for the run-wide scan at the end of the run (test/setup/global-setup.ts)
  registerTestSecrets(Object.fromEntries(secrets));
  emu = await startTestEmulator();
  secrets.set('STM API key', emu.env.SM_API_KEY!);
  secrets.set('PKCS#12 password', emu.env.SM_CLIENT_CERT_PASSWORD!);
}, 120_000);

afterAll(async () => {
  for (const d of daemons) await d.stop();
  await emu?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('secrets never reach logs, error text or argv', () => {
  it('pkcs11 daemon with a client secret: right and wrong LOGINs, the token PIN tried as the secret, a malformed LOGIN, a consumer through the module', async () => {
    const secretFile = join(work, 'client-secret');
    writeFileSync(secretFile, CLIENT_SECRET, { mode: 0o600 });
    const a = await daemon('pkcs11 + client secret', pkcs11Opts('cs', { extraArgs: ['--client-secret-file', secretFile] }));
    expect(await signOnce(a.socket)).toBe(C.CKR_USER_NOT_LOGGED_IN);
    expect(await signOnce(a.socket, WRONG_PIN)).toBe(C.CKR_USER_NOT_LOGGED_IN);
    expect(await signOnce(a.socket, secrets.get('token PIN (softhsm)'))).toBe(C.CKR_USER_NOT_LOGGED_IN); // not the client secret
    expect(await signOnce(a.socket, CLIENT_SECRET)).toBe(0);
    // a LOGIN frame with a stray byte: logged as malformed, its content never dumped
    const login = encodeRequest('LOGIN', 9, { slot_id: 0, user_type: BigInt(CKU_USER), pin: Buffer.from(CLIENT_SECRET) });
    const bad = Buffer.concat([login, Buffer.from([0xff])]);
    bad.writeUInt32LE(login.readUInt32LE(0) + 1, 0);
    await new Promise<void>((resolve) => {
      const s = connect(a.socket, () => s.write(Buffer.concat([encodeRequest('HELLO', 1, { magic: MAGIC, min_version: 1, max_version: 1, client: 'x' }), bad])));
      s.on('close', () => resolve());
      s.on('error', () => undefined);
      s.resume();
    });
    // a consumer through the module, PINs from its environment, SIGNBRIDGE_DEBUG lines on stderr
    const r = spawnSync(process.execPath, ['-e', CONSUMER, signbridgeModule()], {
      cwd: join(import.meta.dirname, '..', '..'),
      env: { ...process.env, SIGNBRIDGE_SOCKET: a.socket, SIGNBRIDGE_DEBUG: '1', WRONG_PIN, RIGHT_PIN: CLIENT_SECRET },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    texts.push({ what: 'consumer stdout+stderr (SIGNBRIDGE_DEBUG)', text: r.stdout + r.stderr });
    // the module sends LOGIN (protocol.md): the wrong PIN reaches the daemon and is refused, the secret signs
    expect(JSON.parse(r.stdout.trim())).toEqual({ wrong: 'CKR_PIN_INCORRECT', right: 'CKR_OK', found: true, sign: 'CKR_OK' });
  });

  it('pkcs11: a wrong token PIN from a PIN file and from SIGNBRIDGE_PIN (start-up fails, exit 3)', async () => {
    const pinFile = join(work, 'wrong-pin');
    writeFileSync(pinFile, WRONG_TOKEN_PIN, { mode: 0o600 });
    expect(await failingDaemon('pkcs11, wrong PIN file', pkcs11Opts('wp', { pinFile }))).toMatch(/refused the PIN/);
    const t = testToken();
    const r = spawnSync(process.execPath, [cliPath(), 'daemon', '--pkcs11-library', t.library, '--token-label', t.tokenLabel, '--socket', join(work, 'envpin', 's.sock'), '--log-level', 'trace'], {
      env: { ...process.env, SOFTHSM2_CONF: t.softhsmConf, SIGNBRIDGE_PIN: WRONG_TOKEN_PIN },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status, r.stderr).toBe(3);
    texts.push({ what: 'daemon stderr, wrong SIGNBRIDGE_PIN', text: r.stdout + r.stderr });
    // and the right PIN from the environment, at trace level
    const ok = spawnSync(process.execPath, [cliPath(), 'daemon', '--pkcs11-library', t.library, '--token-label', t.tokenLabel, '--socket', join(work, 'envpin2', 's.sock'), '--log-level', 'trace', '--help'], {
      env: { ...process.env, SIGNBRIDGE_PIN: secrets.get('token PIN (softhsm)') },
      encoding: 'utf8',
    });
    texts.push({ what: 'daemon --help output with SIGNBRIDGE_PIN set', text: ok.stdout + ok.stderr });
  });

  it('stm daemons: mTLS with the PKCS#12 password, API key from the environment and from a file, then a wrong key and a wrong password', async () => {
    const base = { SM_HOST: emu.env.SM_HOST!, SIGNBRIDGE_STM_CA_FILE: emu.env.SIGNBRIDGE_STM_CA_FILE! };
    const stm = (name: string, env: NodeJS.ProcessEnv, extraArgs: string[] = []): Parameters<typeof startDaemon>[0] => {
      const dir = mkdtempSync(join(work, `${name}-`));
      return { backend: 'stm', socket: join(dir, 's.sock'), logFile: join(dir, 'daemon.log'), env, extraArgs: ['--log-level', 'trace', ...extraArgs], timeoutMs: 30_000 };
    };
    const mtls = await daemon('stm mTLS', stm('mtls', { ...base, SM_CLIENT_CERT_FILE: emu.env.SM_CLIENT_CERT_FILE!, SM_CLIENT_CERT_PASSWORD: emu.env.SM_CLIENT_CERT_PASSWORD! }));
    expect(await signOnce(mtls.socket)).toBe(0);
    const key = await daemon('stm API key (env)', stm('key', { ...base, SM_API_KEY: emu.env.SM_API_KEY! }));
    expect(await signOnce(key.socket)).toBe(0);
    const keyFile = join(work, 'api-key');
    writeFileSync(keyFile, emu.env.SM_API_KEY!, { mode: 0o600 });
    const keyF = await daemon('stm API key (file)', stm('keyf', base, ['--stm-api-key-file', keyFile]));
    expect(await signOnce(keyF.socket)).toBe(0);
    expect(await failingDaemon('stm wrong API key', stm('wkey', { ...base, SM_API_KEY: WRONG_API_KEY }))).toMatch(/refused the credentials/);
    expect(
      await failingDaemon('stm wrong PKCS#12 password', stm('wpw', { ...base, SM_CLIENT_CERT_FILE: emu.env.SM_CLIENT_CERT_FILE!, SM_CLIENT_CERT_PASSWORD: WRONG_P12_PASSWORD })),
    ).toMatch(/SM_CLIENT_CERT_PASSWORD/);
  });

  it('secret files readable by group or others are refused, naming the file and `chmod 600` (STM API key, PKCS#12)', async () => {
    const base = { SM_HOST: emu.env.SM_HOST!, SIGNBRIDGE_STM_CA_FILE: emu.env.SIGNBRIDGE_STM_CA_FILE! };
    const keyFile = join(work, 'api-key-readable');
    writeFileSync(keyFile, emu.env.SM_API_KEY!, { mode: 0o644 });
    chmodSync(keyFile, 0o644);
    const p12 = join(work, 'client-readable.p12');
    copyFileSync(emu.env.SM_CLIENT_CERT_FILE!, p12);
    chmodSync(p12, 0o640);
    const dir = mkdtempSync(join(work, 'perm-'));
    const opts = (env: NodeJS.ProcessEnv, extraArgs: string[] = []): Parameters<typeof startDaemon>[0] => ({
      backend: 'stm', socket: join(dir, 's.sock'), logFile: join(dir, 'daemon.log'), env, extraArgs, timeoutMs: 30_000,
    });
    expect(await failingDaemon('readable API key file', opts(base, ['--stm-api-key-file', keyFile]))).toContain(`chmod 600`);
    const m = await failingDaemon('readable PKCS#12', opts({ ...base, SM_CLIENT_CERT_FILE: p12, SM_CLIENT_CERT_PASSWORD: emu.env.SM_CLIENT_CERT_PASSWORD! }));
    expect(m).toContain(`chmod 600 ${p12}`);
    expect(m).toMatch(/exit code 2/);
  });

  it('zero hits in everything these daemons wrote: logs, audit logs, error texts, argv, the consumer output', () => {
    const found: string[] = [];
    const files = logFilesUnder(work);
    expect(files.filter((f) => basename(f) === 'daemon.log').length).toBeGreaterThanOrEqual(8);
    expect(files.some((f) => basename(f) === 'audit.log')).toBe(true);
    let bytes = 0;
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      bytes += text.length;
      found.push(...hits(f, text));
      text.split('\n').forEach((l, i) => {
        if (UNREDACTED.test(l)) found.push(`${f}:${i + 1}: an unredacted secret field`);
      });
    }
    for (const t of texts) found.push(...hits(t.what, t.text));
    // the greps can fail: the secrets are really there to be found in what the test holds
    expect(hits('self-check', `x${CLIENT_SECRET}x ${Buffer.from(emu.env.SM_API_KEY!).toString('hex')}`)).toHaveLength(2);
    console.log(`[secrets] ${secrets.size} secrets × 3 forms over ${files.length} files (${bytes} bytes) and ${texts.length} texts: ${found.length} hits`);
    expect(found).toEqual([]);
  });

  it("zero hits in every daemon log the rest of the suite wrote so far (testLogDir), for the run's token PINs", () => {
    const dir = testLogDir();
    expect(dir, 'daemon-process.ts copies logs only inside vitest or with SIGNBRIDGE_TEST_LOG_DIR').toBeDefined();
    // logs of earlier runs whose vitest is gone are removed (their PINs are gone with their tokens)
    const parent = join(dir!, '..');
    if (!process.env.SIGNBRIDGE_TEST_LOG_DIR && existsSync(parent)) {
      for (const e of readdirSync(parent)) {
        const pid = Number(e);
        if (!Number.isInteger(pid) || pid === process.ppid) continue;
        try {
          process.kill(pid, 0);
        } catch {
          if (Date.now() - statSync(join(parent, e)).mtimeMs > 60_000) rmSync(join(parent, e), { recursive: true, force: true });
        }
      }
    }
    const files = logFilesUnder(dir!);
    // at least this file's own daemons are there
    expect(files.length).toBeGreaterThanOrEqual(daemons.length);
    const found: string[] = [];
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      found.push(...hits(f, text));
      text.split('\n').forEach((l, i) => {
        if (UNREDACTED.test(l)) found.push(`${f}:${i + 1}: an unredacted secret field`);
      });
    }
    console.log(`[secrets] run log dir ${dir}: ${files.length} daemon logs scanned, ${found.length} hits`);
    expect(found).toEqual([]);
  });
});
