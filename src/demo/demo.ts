// `signbridge demo`: the whole path a user cares about, end to end, with real parts only.
// Default — the remote chain: STM emulator (HTTPS + mTLS, keys in its SoftHSMv2 token,
// certificates from its CA) → signbridge daemon --backend stm → libsignbridge-pkcs11.so →
// osslsigncode signs a real Windows PE → osslsigncode verifies it against the emulator's CA.
// `--backend pkcs11` — the local chain of the first release: SoftHSMv2 token → daemon → module.

import { X509Certificate } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import pino from 'pino';
import { attr } from '../core/objects.js';
import { CKA_CLASS, CKA_ID, CKA_LABEL, CKA_VALUE, CKO_CERTIFICATE } from '../core/pkcs11.js';
import { createLogger } from '../daemon/logger.js';
import { DaemonClient } from '../ipc/client.js';
import { modulePath, packageRoot } from '../native/loader.js';
import { createToken } from '../softhsm/token-setup.js';
import { startDaemon, type RunningDaemon } from './daemon-process.js';
import { osslsigncodeSign, osslsigncodeVerify, parseVerify } from './osslsigncode.js';
import { aptLine, missingFor, requiredFile } from './requirements.js';

const USAGE = `usage: signbridge demo [--backend stm|pkcs11|csc] [--state-dir <dir>]

stm (default): starts a local DigiCert Software Trust Manager emulator (HTTPS with mTLS; an
RSA-3072 and an ECDSA P-256 keypair in its SoftHSMv2 token, certificates from its own CA), starts
a signbridge daemon with --backend stm against it, signs a Windows PE (win32-loader.exe) with
osslsigncode through the signbridge PKCS#11 module once per key, and verifies every signature
with osslsigncode against the emulator's CA.

pkcs11: the local chain — a SoftHSMv2 token with an RSA-3072 and an ECDSA P-256 key, a daemon
with --backend pkcs11 on it, the same signing and verification.

  --backend <name>    stm (default), pkcs11, or csc (a PDF signed with pdfsig through the CSC
                      emulator, an OTP per signature; verified by pdfsig)
  --state-dir <dir>   where the emulator/token, certificates, signed files and logs go
                      (default <signbridge>/state/demo; recreated on every run)
`;

export const DEMO_TOKEN_LABEL = 'signbridge-demo';
const MARKER = '.signbridge-demo';

interface Row {
  label: string;
  algorithm: string;
  output: string;
  result: string;
  signer: string;
  ok: boolean;
}

type DemoBackend = 'stm' | 'pkcs11' | 'csc';

function parseArgs(args: string[]): { stateDir: string; backend: DemoBackend } | { help: true } | { error: string } {
  let stateDir = join(packageRoot(), 'state', 'demo');
  let backend: string = 'stm';
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--help' || a === '-h') return { help: true };
    if (a === '--state-dir' && args[i + 1] !== undefined) stateDir = args[++i]!;
    else if (a.startsWith('--state-dir=')) stateDir = a.slice('--state-dir='.length);
    else if (a === '--backend' && args[i + 1] !== undefined) backend = args[++i]!;
    else if (a.startsWith('--backend=')) backend = a.slice('--backend='.length);
    else return { error: `unknown argument "${a}"` };
  }
  if (backend !== 'stm' && backend !== 'pkcs11' && backend !== 'csc') return { error: `--backend must be stm, pkcs11 or csc, not "${backend}"` };
  return { stateDir: resolve(stateDir), backend };
}

function algorithmOf(certPem: string | Buffer): string {
  const x = new X509Certificate(certPem);
  const d = x.publicKey.asymmetricKeyDetails ?? {};
  if (x.publicKey.asymmetricKeyType === 'rsa') return `RSA-${d.modulusLength} (sha256)`;
  if (x.publicKey.asymmetricKeyType === 'ec') return `ECDSA ${d.namedCurve === 'prime256v1' ? 'P-256' : d.namedCurve} (sha256)`;
  return String(x.publicKey.asymmetricKeyType);
}

function table(rows: Row[]): string {
  const head = ['key', 'algorithm', 'signed file', 'verification', 'signer (as the verifier saw it)'];
  const cells = rows.map((r) => [r.label, r.algorithm, r.output, r.result, r.signer]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((s, i) => s.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

function say(s: string): void {
  process.stdout.write(`${s}\n`);
}

export async function runDemo(args: string[]): Promise<number> {
  const code = await demo(args);
  process.exitCode = code;
  return code;
}

async function demo(args: string[]): Promise<number> {
  const parsed = parseArgs(args);
  if ('help' in parsed) {
    say(USAGE);
    return 0;
  }
  if ('error' in parsed) {
    process.stderr.write(`signbridge demo: ${parsed.error}\n${USAGE}`);
    return 2;
  }
  const missing = missingFor(['demo']);
  if (missing.length > 0) {
    for (const r of missing) process.stderr.write(`signbridge demo: missing ${r.name} (Debian package ${r.package})\n`);
    process.stderr.write(`signbridge demo: install them as root, then run the demo again:\n  ${aptLine(missing)}\n`);
    return 1;
  }

  const { stateDir, backend } = parsed;
  let module: string;
  try {
    module = modulePath();
  } catch (e) {
    process.stderr.write(`signbridge demo: ${(e as Error).message}\n`);
    return 1;
  }
  // recreated on every run — but only a directory this demo made (or an empty one) is ever deleted
  if (existsSync(stateDir) && readdirSync(stateDir).length > 0 && !existsSync(join(stateDir, MARKER))) {
    process.stderr.write(`signbridge demo: ${stateDir} is not empty and was not made by the demo; choose a new or empty --state-dir\n`);
    return 1;
  }
  rmSync(stateDir, { recursive: true, force: true });
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  writeFileSync(join(stateDir, MARKER), 'made by `signbridge demo`; deleted and recreated on every run\n');
  const chain = { stm: 'remote chain: DigiCert STM emulator', pkcs11: 'local chain: SoftHSMv2', csc: 'document signing: CSC emulator, pdfsig' }[backend];
  say(`signbridge demo (${chain}) — state in ${stateDir}`);

  // a unix socket path must fit sun_path (108 bytes): fall back to a private temp dir
  let runDir = join(stateDir, 'run');
  if (Buffer.byteLength(join(runDir, 'signbridge.sock')) > 100) runDir = mkdtempSync(join(tmpdir(), 'signbridge-demo-'));
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  const socket = join(runDir, 'signbridge.sock');
  const logFile = join(stateDir, 'daemon.log');
  if (backend === 'csc') return (await import('./demo-csc.js')).cscChain({ stateDir, socket, logFile, module, say });
  return backend === 'stm' ? remoteChain(stateDir, socket, logFile, module) : localChain(stateDir, socket, logFile, module);
}

interface DemoKey {
  label: string;
  algorithm: string;
}

/** Signs the PE once per key through the module and verifies each result; never throws for one key. */
async function signAll(o: { stateDir: string; module: string; socket: string; tokenLabel: string; keys: DemoKey[]; caFile: (k: DemoKey) => string }): Promise<Row[]> {
  const pe = requiredFile('win32-loader');
  const unsigned = join(o.stateDir, basename(pe));
  copyFileSync(pe, unsigned);
  say(`3/4 signing ${pe} with osslsigncode through ${o.module}…`);
  const rows: Row[] = [];
  for (const k of o.keys) {
    const output = join(o.stateDir, `win32-loader.${k.label}.signed.exe`);
    const s = await osslsigncodeSign({
      module: o.module,
      tokenLabel: o.tokenLabel,
      keyLabel: k.label,
      input: unsigned,
      output,
      description: 'signbridge demo',
      env: { SIGNBRIDGE_SOCKET: o.socket },
    });
    if (s.status !== 0) {
      const why = `${s.stdout}\n${s.stderr}`.trim().split('\n').slice(-3).join(' / ');
      rows.push({ label: k.label, algorithm: k.algorithm, output: '-', result: `SIGNING FAILED: ${why}`, signer: '-', ok: false });
      continue;
    }
    const v = parseVerify(await osslsigncodeVerify(output, o.caFile(k)));
    rows.push({
      label: k.label,
      algorithm: k.algorithm,
      output,
      result: v.ok ? 'OK (Signature verification: ok)' : `FAILED (${v.line})`,
      signer: v.signer ?? '-',
      ok: v.ok,
    });
  }
  return rows;
}

function finish(rows: Row[], expected: number, logFile: string, check: string): number {
  say('');
  say(table(rows));
  say('');
  const allOk = rows.length === expected && rows.every((r) => r.ok);
  if (allOk) {
    say(`All ${rows.length} signatures verified. Check one yourself:`);
    say(`  ${check}`);
    return 0;
  }
  say(`Some signatures did not verify; the daemon log is ${logFile}. Run again with SIGNBRIDGE_DEBUG=1 for the module's view.`);
  return 1;
}

/** The keys the daemon serves, as the module sees them (label + certificate from the inventory). */
async function servedKeys(socket: string): Promise<DemoKey[]> {
  const c = await DaemonClient.connect({ socketPath: socket });
  try {
    const objs = (await c.inventory()).slots.flatMap((s) => s.objects);
    const certs = objs.filter((o) => attr(o, CKA_CLASS)?.readBigUInt64LE(0) === BigInt(CKO_CERTIFICATE));
    return objs
      .filter((o) => o.key_handle.length > 0)
      .map((o) => {
        const cert = certs.find((x) => attr(x, CKA_ID)?.equals(attr(o, CKA_ID) ?? Buffer.alloc(0)));
        const der = cert ? attr(cert, CKA_VALUE) : undefined;
        return { label: attr(o, CKA_LABEL)?.toString('utf8') ?? '?', algorithm: der ? algorithmOf(der) : '?' };
      });
  } finally {
    c.close();
  }
}

async function remoteChain(stateDir: string, socket: string, logFile: string, module: string): Promise<number> {
  const emuDir = join(stateDir, 'emulator');
  const emuLog = join(stateDir, 'emulator.log');
  say(`1/4 starting the STM emulator in ${emuDir} (HTTPS + mTLS; keypairs codesign-rsa RSA-3072 and codesign-ec P-256 generated in its SoftHSMv2 token)…`);
  // Loaded lazily: only the remote chain needs it (it brings graphene and its own token).
  const { startEmulator } = (await import('../emulator/index.js' as string)) as typeof import('../emulator/index.js');
  let emu: Awaited<ReturnType<typeof startEmulator>>;
  try {
    emu = await startEmulator({ stateDir: emuDir, logger: createLogger('info', pino.destination({ dest: emuLog, sync: true })) });
  } catch (e) {
    process.stderr.write(`signbridge demo: cannot start the STM emulator: ${(e as Error).message}\n`);
    return 1;
  }
  const caFile = emu.env.SIGNBRIDGE_STM_CA_FILE!;
  say(`    ${emu.url} (log: ${emuLog}); CA certificate ${caFile}`);
  let daemon: RunningDaemon | undefined;
  let rows: Row[] = [];
  let keys: DemoKey[] = [];
  try {
    say(`2/4 starting the signbridge daemon --backend stm (mTLS with ${emu.env.SM_CLIENT_CERT_FILE}) on ${socket} (log: ${logFile})…`);
    // The daemon gets exactly what a user's environment would hold (env.sh minus the API key:
    // this demo shows mTLS); secrets travel in its environment, never in argv.
    daemon = await startDaemon({
      backend: 'stm',
      socket,
      logFile,
      env: {
        SM_HOST: emu.env.SM_HOST,
        SM_CLIENT_CERT_FILE: emu.env.SM_CLIENT_CERT_FILE,
        SM_CLIENT_CERT_PASSWORD: emu.env.SM_CLIENT_CERT_PASSWORD,
        SIGNBRIDGE_STM_CA_FILE: caFile,
      },
    });
    keys = await servedKeys(socket);
    say(`    daemon pid ${daemon.pid} answers HELLO; keys: ${keys.map((k) => `${k.label} (${k.algorithm})`).join(', ')}`);
    rows = await signAll({ stateDir, module, socket, tokenLabel: 'signbridge-stm', keys, caFile: () => caFile });
  } catch (e) {
    process.stderr.write(`signbridge demo: ${(e as Error).message}\n`);
    return 1;
  } finally {
    say('4/4 stopping the daemon and the emulator…');
    await daemon?.stop();
    await emu.stop();
  }
  const signed = emu.stats().requests['POST /keypairs/{id}/sign'] ?? 0;
  say(`    the emulator made ${signed} signature(s) in its SoftHSMv2 token`);
  return finish(rows, Math.max(keys.length, 2), logFile, `osslsigncode verify -in ${rows[0]?.output ?? '<signed file>'} -CAfile ${caFile}`);
}

async function localChain(stateDir: string, socket: string, logFile: string, module: string): Promise<number> {
  say('1/4 creating a SoftHSMv2 token with an RSA-3072 and an ECDSA P-256 key (keys generated inside the token)…');
  const token = await createToken({
    stateDir,
    tokenLabel: DEMO_TOKEN_LABEL,
    keys: [
      { type: 'rsa', bits: 3072, label: 'rsa-3072', idHex: '01' },
      { type: 'ec', curve: 'P-256', label: 'ec-p256', idHex: '02' },
    ],
  });
  for (const k of token.keys) say(`    ${k.label}: certificate ${k.certPath}`);
  say(`2/4 starting the signbridge daemon on ${socket} (log: ${logFile})…`);
  let daemon: RunningDaemon | undefined;
  let rows: Row[] = [];
  try {
    daemon = await startDaemon({
      socket,
      softhsmConf: token.softhsmConf,
      library: token.library,
      tokenLabel: token.tokenLabel,
      pinFile: token.pinFile,
      logFile,
    });
    say(`    daemon pid ${daemon.pid} answers HELLO`);
    const certOf = new Map(token.keys.map((k) => [k.label, k.certPath]));
    rows = await signAll({
      stateDir,
      module,
      socket,
      tokenLabel: token.tokenLabel,
      keys: token.keys.map((k) => ({ label: k.label, algorithm: algorithmOf(k.certPem) })),
      caFile: (k) => certOf.get(k.label)!,
    });
  } catch (e) {
    process.stderr.write(`signbridge demo: ${(e as Error).message}\n`);
    return 1;
  } finally {
    if (daemon) {
      say('4/4 stopping the daemon…');
      await daemon.stop();
    }
  }
  return finish(rows, token.keys.length, logFile, `osslsigncode verify -in ${rows[0]?.output ?? '<signed file>'} -CAfile ${token.keys[0]!.certPath}`);
}
