// `signbridge demo`: the whole path a user cares about, end to end, with real parts only —
// SoftHSMv2 token → signbridge daemon → libsignbridge-pkcs11.so → osslsigncode signs a real
// Windows PE → osslsigncode verifies it against the key's certificate.

import { X509Certificate } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { modulePath, packageRoot } from '../native/loader.js';
import { createToken, type CreatedKey } from '../softhsm/token-setup.js';
import { startDaemon, type RunningDaemon } from './daemon-process.js';
import { osslsigncodeSign, osslsigncodeVerify, parseVerify } from './osslsigncode.js';
import { aptLine, missingFor, requiredFile } from './requirements.js';

const USAGE = `usage: signbridge demo [--state-dir <dir>]

Creates a SoftHSMv2 token with an RSA-3072 and an ECDSA P-256 code-signing key, starts a
signbridge daemon on it, signs a Windows PE (win32-loader.exe) with osslsigncode through the
signbridge PKCS#11 module once per key, and verifies every signature with osslsigncode.

  --state-dir <dir>   where the token, certificates, signed files and logs go
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

function parseArgs(args: string[]): { stateDir: string } | { help: true } | { error: string } {
  let stateDir = join(packageRoot(), 'state', 'demo');
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--help' || a === '-h') return { help: true };
    if (a === '--state-dir' && args[i + 1] !== undefined) stateDir = args[++i]!;
    else if (a.startsWith('--state-dir=')) stateDir = a.slice('--state-dir='.length);
    else return { error: `unknown argument "${a}"` };
  }
  return { stateDir: resolve(stateDir) };
}

function algorithmOf(k: CreatedKey): string {
  const x = new X509Certificate(k.certPem);
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

  const { stateDir } = parsed;
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
  say(`signbridge demo — state in ${stateDir}`);

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

  // a unix socket path must fit sun_path (108 bytes): fall back to a private temp dir
  let runDir = join(stateDir, 'run');
  if (Buffer.byteLength(join(runDir, 'signbridge.sock')) > 100) runDir = mkdtempSync(join(tmpdir(), 'signbridge-demo-'));
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  const socket = join(runDir, 'signbridge.sock');
  const logFile = join(stateDir, 'daemon.log');
  say(`2/4 starting the signbridge daemon on ${socket} (log: ${logFile})…`);
  let daemon: RunningDaemon | undefined;
  const rows: Row[] = [];
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

    const pe = requiredFile('win32-loader');
    const unsigned = join(stateDir, basename(pe));
    copyFileSync(pe, unsigned);
    say(`3/4 signing ${pe} with osslsigncode through ${module}…`);
    for (const k of token.keys) {
      const output = join(stateDir, `win32-loader.${k.label}.signed.exe`);
      const s = await osslsigncodeSign({
        module,
        tokenLabel: token.tokenLabel,
        keyLabel: k.label,
        input: unsigned,
        output,
        description: 'signbridge demo',
        env: { SIGNBRIDGE_SOCKET: socket },
      });
      if (s.status !== 0) {
        const why = `${s.stdout}\n${s.stderr}`.trim().split('\n').slice(-3).join(' / ');
        rows.push({ label: k.label, algorithm: algorithmOf(k), output: '-', result: `SIGNING FAILED: ${why}`, signer: '-', ok: false });
        continue;
      }
      const v = parseVerify(await osslsigncodeVerify(output, k.certPath));
      rows.push({
        label: k.label,
        algorithm: algorithmOf(k),
        output,
        result: v.ok ? 'OK (Signature verification: ok)' : `FAILED (${v.line})`,
        signer: v.signer ?? '-',
        ok: v.ok,
      });
    }
  } catch (e) {
    process.stderr.write(`signbridge demo: ${(e as Error).message}\n`);
    return 1;
  } finally {
    if (daemon) {
      say('4/4 stopping the daemon…');
      await daemon.stop();
    }
  }

  say('');
  say(table(rows));
  say('');
  const allOk = rows.length === token.keys.length && rows.every((r) => r.ok);
  if (allOk) {
    say(`All ${rows.length} signatures verified. Check one yourself:`);
    say(`  osslsigncode verify -in ${rows[0]!.output} -CAfile ${token.keys[0]!.certPath}`);
    return 0;
  }
  say(`Some signatures did not verify; the daemon log is ${logFile}. Run again with SIGNBRIDGE_DEBUG=1 for the module's view.`);
  return 1;
}
