// The remote chain end to end: osslsigncode → libsignbridge-pkcs11.so → signbridge daemon
// (--backend stm, a real child process) → STM emulator (HTTPS, mTLS or API key) → SoftHSMv2.
// Every signed PE is checked by `osslsigncode verify -CAfile <emulator CA>` — the verifier only
// knows the emulator's CA, never anything signbridge computed. Faults are injected by the
// emulator and counted by its own stats.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../../src/demo/daemon-process.js';
import { osslsigncodeSign, osslsigncodeVerify, parseVerify } from '../../src/demo/osslsigncode.js';
import { attr } from '../../src/core/objects.js';
import * as C from '../../src/core/pkcs11.js';
import { DaemonClient } from '../../src/ipc/client.js';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.js';
import { signbridgeModule, unsignedPe } from '../helpers/module.js';
import { describeRun } from '../helpers/run.js';

let emu: TestEmulator;
let work: string;
const daemons: RunningDaemon[] = [];
let mtls: RunningDaemon & { log: string };
const TOKEN = 'signbridge-stm';

/** Only what each credential mode needs: nothing else leaks in from env.sh. */
function mtlsEnv(): NodeJS.ProcessEnv {
  return { SM_HOST: emu.env.SM_HOST, SM_CLIENT_CERT_FILE: emu.env.SM_CLIENT_CERT_FILE, SM_CLIENT_CERT_PASSWORD: emu.env.SM_CLIENT_CERT_PASSWORD, SIGNBRIDGE_STM_CA_FILE: emu.env.SIGNBRIDGE_STM_CA_FILE };
}
function apiKeyEnv(key = emu.env.SM_API_KEY): NodeJS.ProcessEnv {
  return { SM_HOST: emu.env.SM_HOST, SM_API_KEY: key, SIGNBRIDGE_STM_CA_FILE: emu.env.SIGNBRIDGE_STM_CA_FILE };
}

let n = 0;
async function stmDaemon(env: NodeJS.ProcessEnv, extraArgs: string[] = []): Promise<RunningDaemon & { log: string }> {
  const dir = mkdtempSync(join(work, 'd-'));
  const log = join(dir, 'daemon.log');
  const d = await startDaemon({ backend: 'stm', socket: join(dir, 's.sock'), logFile: log, env, extraArgs: ['--log-level', 'debug', ...extraArgs], timeoutMs: 30_000 });
  daemons.push(d);
  return Object.assign(d, { log });
}

async function signPe(d: RunningDaemon, keyLabel: string) {
  const output = join(work, `pe-${keyLabel}-${++n}.exe`);
  const r = await osslsigncodeSign({ module: signbridgeModule(), tokenLabel: TOKEN, keyLabel, input: unsignedPe(), output, env: { SIGNBRIDGE_SOCKET: d.socket, SIGNBRIDGE_DEBUG: '1' } });
  return { r, output };
}

async function signAndVerify(d: RunningDaemon, keyLabel: string): Promise<string> {
  const { r, output } = await signPe(d, keyLabel);
  expect(r.status, `${describeRun(r)}\n--- daemon stderr\n${d.stderr()}`).toBe(0);
  const v = await osslsigncodeVerify(output, emu.env.SIGNBRIDGE_STM_CA_FILE!);
  const verdict = parseVerify(v);
  expect(verdict.ok, describeRun(v)).toBe(true);
  expect(verdict.signer).toContain(`CN=${keyLabel}`);
  return output;
}

async function handleOf(d: RunningDaemon, label: string): Promise<{ c: DaemonClient; handle: Buffer }> {
  const c = await DaemonClient.connect({ socketPath: d.socket });
  const inv = await c.inventory();
  const o = inv.slots.flatMap((s) => s.objects).find((x) => x.key_handle.length > 0 && attr(x, C.CKA_LABEL)?.toString() === label);
  if (!o) throw new Error(`the daemon serves no key ${label}`);
  return { c, handle: o.key_handle };
}

const waitFor = async (cond: () => boolean, ms = 10_000): Promise<boolean> => {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) if (cond()) return true;
  return cond();
};

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'sb-stm-e2e-'));
  emu = await startTestEmulator();
  mtls = await stmDaemon(mtlsEnv());
});
afterAll(async () => {
  for (const d of daemons) await d.stop();
  await emu?.stop();
  if (work && !process.env.SIGNBRIDGE_KEEP_TEST_STATE) rmSync(work, { recursive: true, force: true });
});

describe('osslsigncode through the stm backend', () => {
  it('mTLS (PKCS#12 only): signs win32-loader.exe with codesign-rsa and codesign-ec; verify -CAfile <emulator CA> passes', async () => {
    emu.resetStats();
    for (const k of ['codesign-rsa', 'codesign-ec']) await signAndVerify(mtls, k);
    // the signatures were made by the emulator (its own count), over one kept-alive connection
    expect(emu.stats().requests['POST /keypairs/{id}/sign']).toBe(2);
    expect(emu.stats().tlsHandshakes).toBe(0);
  });

  it('a tampered signed file fails verification (the check above can fail)', async () => {
    const out = await signAndVerify(mtls, 'codesign-ec');
    const bytes = readFileSync(out);
    bytes[0x200] ^= 0xff; // inside the signed image, outside the signature
    const bad = join(work, 'tampered.exe');
    writeFileSync(bad, bytes);
    expect(parseVerify(await osslsigncodeVerify(bad, emu.env.SIGNBRIDGE_STM_CA_FILE!)).ok).toBe(false);
  });

  it('API key only (no client certificate): signs and verifies', async () => {
    const d = await stmDaemon(apiKeyEnv());
    await signAndVerify(d, 'codesign-rsa');
  });
});

describe('wrong credentials: the daemon does not start (exit 3) and says what to fix', () => {
  it('a wrong API key', async () => {
    const bad = 'wrong-api-key-for-the-test-0123';
    const e = await stmDaemon(apiKeyEnv(bad)).then(() => undefined, (x: Error) => x);
    expect(e?.message).toMatch(/exit code 3/);
    expect(e?.message).toMatch(/refused the credentials \(HTTP 401.*check SM_API_KEY and the client certificate/);
    expect(e?.message).not.toContain(bad);
  });

  it('a client certificate from another CA', async () => {
    const key = join(work, 'other.key');
    const crt = join(work, 'other.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=not from the emulator CA', '-days', '1', '-keyout', key, '-out', crt], { stdio: 'ignore' });
    const env = { SM_HOST: emu.env.SM_HOST, SM_CLIENT_CERT_FILE: crt, SM_CLIENT_KEY_FILE: key, SIGNBRIDGE_STM_CA_FILE: emu.env.SIGNBRIDGE_STM_CA_FILE };
    const e = await stmDaemon(env).then(() => undefined, (x: Error) => x);
    expect(e?.message).toMatch(/exit code 3/);
    expect(e?.message).toMatch(/STM at 127\.0\.0\.1:\d+ refused the credentials .*SM_CLIENT_CERT_FILE/);
  });
});

describe('faults injected by the emulator', () => {
  it('429 (Retry-After: 1) and 503 are retried; the PE still verifies; the daemon honoured Retry-After', async () => {
    emu.resetStats();
    emu.setFaults({ fail429Next: 1, retryAfterS: 1, fail503Next: 1 });
    const t0 = Date.now();
    await signAndVerify(mtls, 'codesign-rsa');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1000);
    const s = emu.stats();
    expect([s.responses['429'], s.responses['503'], s.requests['POST /keypairs/{id}/sign']]).toEqual([1, 1, 3]);
    expect(await waitFor(() => readFileSync(mtls.log, 'utf8').includes('"last":"HTTP 429'))).toBe(true);
    emu.setFaults({});
  });

  it('a sign that outlives --sign-timeout-ms fails in bounded time with CKR_DEVICE_ERROR and one log line', async () => {
    const d = await stmDaemon(mtlsEnv(), ['--sign-timeout-ms', '1000']);
    emu.setFaults({ latencyMs: 4000, scope: 'sign' });
    try {
      const { c, handle } = await handleOf(d, 'codesign-ec');
      const t0 = Date.now();
      const e = await c.sign({ key_handle: handle, mechanism: BigInt(C.CKM_ECDSA), hash_alg: BigInt(C.CKM_SHA256), mgf: 0n, salt_len: 0, data: Buffer.alloc(32, 1) }).then(() => undefined, (x: { ckr: number; message: string }) => x);
      expect(Date.now() - t0).toBeLessThan(2500);
      expect(e?.ckr).toBe(C.CKR_DEVICE_ERROR);
      expect(e?.message).toMatch(/within 1000 ms .*raise --sign-timeout-ms/);
      c.close();
      // the tool fails too, in bounded time
      const t1 = Date.now();
      const { r } = await signPe(d, 'codesign-ec');
      expect(r.status).not.toBe(0);
      expect(Date.now() - t1).toBeLessThan(15_000);
      expect(await waitFor(() => readFileSync(d.log, 'utf8').split('\n').filter((l) => l.includes('"msg":"sign failed"') && l.includes('CKR_DEVICE_ERROR') && l.includes('within 1000 ms')).length >= 2)).toBe(true);
    } finally {
      emu.setFaults({});
    }
  });

  it('a suspended keypair (found after SIGHUP) is refused with CKR_KEY_FUNCTION_NOT_PERMITTED and the log says what to do', async () => {
    const { id } = await emu.createKeypair({ alias: 'suspend-me', key_alg: 'ECDSA', curve: 'P-256' });
    process.kill(mtls.pid, 'SIGHUP');
    expect(await waitFor(() => readFileSync(mtls.log, 'utf8').includes('"reason":"SIGHUP"') && readFileSync(mtls.log, 'utf8').includes('suspend-me (EC P-256)'))).toBe(true);
    await signAndVerify(mtls, 'suspend-me');
    await emu.suspendKeypair(id);
    const { c, handle } = await handleOf(mtls, 'suspend-me');
    const e = await c.sign({ key_handle: handle, mechanism: BigInt(C.CKM_ECDSA), hash_alg: BigInt(C.CKM_SHA256), mgf: 0n, salt_len: 0, data: Buffer.alloc(32, 2) }).then(() => undefined, (x: { ckr: number; message: string }) => x);
    c.close();
    expect(e?.ckr).toBe(C.CKR_KEY_FUNCTION_NOT_PERMITTED);
    const { r } = await signPe(mtls, 'suspend-me');
    expect(r.status).not.toBe(0);
    expect(await waitFor(() => readFileSync(mtls.log, 'utf8').includes('STM refused: the keypair suspend-me is suspended'))).toBe(true);
    const line = readFileSync(mtls.log, 'utf8').split('\n').find((l) => l.includes('"msg":"sign failed"') && l.includes('suspend-me is suspended'))!;
    expect(line).toContain('CKR_KEY_FUNCTION_NOT_PERMITTED');
    expect(line).toContain('ask an STM admin to resume it');
  });

  it('nothing secret in any daemon log', () => {
    for (const d of daemons as Array<RunningDaemon & { log: string }>) {
      const text = readFileSync(d.log, 'utf8');
      expect(text).not.toContain(emu.env.SM_API_KEY!);
      expect(text).not.toContain(emu.env.SM_CLIENT_CERT_PASSWORD!);
    }
  });
});
