// `signbridge doctor`: what a release engineer runs when a signing step fails — is the module
// built, is the daemon there and answering, may this user reach it, what keys does it serve (and
// do their certificates still hold), and are the signing tools installed. One line per check,
// each failure with the fix; exit 1 when anything failed.
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { defaultSocketPath } from '../core/paths.js';
import { aptLine, isMet, loadRequirements } from '../demo/requirements.js';
import { DaemonClient } from '../ipc/client.js';
import { loadAddon, modulePath } from '../native/loader.js';
import { pkcs11Binding } from '../native/pkcs11js.js';
import { keysOf } from './keys.js';
import { serviceSocket } from './service-socket.js';

export const DOCTOR_HELP = `Usage: signbridge doctor [--socket <path>] [--json]

Checks the installation and the running daemon, one line per check, each problem with its fix:
the PKCS#11 module and the native addon, the socket and its permissions, the daemon (protocol,
keys, certificate expiry), and the signing tools signbridge is tested with.
Exit status 0 when nothing failed (warnings allowed), 1 otherwise.
  --socket <path>   the daemon's socket (default: $SIGNBRIDGE_SOCKET, else the per-user default)
  --json            machine-readable output
`;

export type Status = 'ok' | 'warn' | 'fail';
export interface Check {
  status: Status;
  what: string;
  detail: string;
  fix?: string;
}

/** Certificates closer than this to expiry are a warning. */
const EXPIRY_WARNING_DAYS = 30;
/** The tools a recipe in the README uses (scripts/system-requirements.json package names). */
const CONSUMER_PACKAGES = ['osslsigncode', 'libengine-pkcs11-openssl', 'opensc', 'openjdk-17-jdk-headless', 'openssl'];

function check(status: Status, what: string, detail: string, fix?: string): Check {
  return fix === undefined ? { status, what, detail } : { status, what, detail, fix };
}

function nodeCheck(): Check {
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
  const ok = major > 20 || (major === 20 && minor >= 17);
  return ok
    ? check('ok', 'Node.js', `v${process.versions.node}`)
    : check('fail', 'Node.js', `v${process.versions.node} is older than 20.17`, 'install Node.js 20.17 or newer');
}

function moduleCheck(): Check {
  try {
    return check('ok', 'PKCS#11 module', modulePath());
  } catch (e) {
    return check('fail', 'PKCS#11 module', (e as Error).message, 'run `npm run build` in the signbridge package');
  }
}

function addonCheck(): Check {
  try {
    loadAddon();
    return check('ok', 'native addon', 'loads (the daemon checks its clients\' uid with it)');
  } catch (e) {
    return check('fail', 'native addon', (e as Error).message, 'run `npm run build` in the signbridge package');
  }
}

/** graphene-pk11 / pkcs11js: only the pkcs11 backend, the emulator and the demo need them. */
function pkcs11BindingCheck(): Check {
  try {
    const b = pkcs11Binding();
    return check('ok', 'PKCS#11 binding', `graphene-pk11 + pkcs11js from ${b.source === 'dependency' ? 'the installed dependency' : b.source}`);
  } catch (e) {
    return check('warn', 'PKCS#11 binding', `${(e as Error).message} (needed only for --backend pkcs11, the emulator and the demo)`);
  }
}

/** The socket's directory must be this user's and private (design.md); the socket must exist. */
function socketChecks(socket: string): Check[] {
  const dir = dirname(socket);
  const out: Check[] = [];
  try {
    const st = statSync(dir);
    const uid = process.getuid?.();
    // the module trusts a directory of its own user or of root (README "Who may answer")
    if (uid !== undefined && st.uid !== uid && st.uid !== 0) {
      out.push(check('fail', 'socket directory', `${dir} belongs to uid ${st.uid}, not to you (uid ${uid}) or root`, 'run the tool as the daemon\'s user, or point SIGNBRIDGE_SOCKET at your own daemon'));
    } else if ((st.mode & 0o077) !== 0) {
      out.push(check('warn', 'socket directory', `${dir} is mode ${(st.mode & 0o777).toString(8)}: others can reach the socket's directory`, `chmod 700 ${dir}`));
    } else {
      out.push(check('ok', 'socket directory', `${dir} (mode 700, yours)`));
    }
  } catch {
    out.push(check('fail', 'socket directory', `${dir} does not exist: no daemon has run with this socket`, 'start the daemon: `signbridge daemon …` (README "Start the daemon"), or set SIGNBRIDGE_SOCKET'));
    return out;
  }
  try {
    if (!statSync(socket).isSocket()) out.push(check('fail', 'socket', `${socket} is not a socket`, `remove it and restart the daemon`));
  } catch {
    out.push(check('fail', 'socket', `${socket} does not exist: the daemon is not running`, 'start the daemon: `signbridge daemon …`'));
  }
  return out;
}

async function daemonChecks(socket: string, now: Date): Promise<Check[]> {
  let client: DaemonClient;
  try {
    client = await DaemonClient.connect({ socketPath: socket, timeoutMs: 5000, clientName: `signbridge doctor pid=${process.pid}` });
  } catch (e) {
    return [check('fail', 'daemon', (e as Error).message)];
  }
  try {
    const inv = await client.inventory();
    const keys = keysOf(inv.slots);
    const out: Check[] = [
      check('ok', 'daemon', `${client.server} answers on ${socket} (protocol ${client.version}); ${keys.length} key(s) in ${inv.slots.length} slot(s)`),
    ];
    if (keys.length === 0) out.push(check('warn', 'keys', 'the daemon serves no keys', 'check the token label / --stm-key-filter and the daemon\'s log'));
    for (const k of keys) {
      const what = `key ${k.label}`;
      if (!k.notAfter) {
        out.push(check('warn', what, `${k.algorithm}, no certificate: SunPKCS11 (jarsigner) will not list it`, 'store the certificate on the token with the same CKA_ID'));
        continue;
      }
      const days = Math.floor((new Date(k.notAfter).getTime() - now.getTime()) / 86_400_000);
      const detail = `${k.algorithm}, ${k.subject ?? ''}, certificate valid until ${k.notAfter.slice(0, 10)}; ${k.uri}`;
      if (days < 0) out.push(check('fail', what, `${detail} — EXPIRED`, 'renew the certificate; signatures made now will not validate'));
      else if (days < EXPIRY_WARNING_DAYS) out.push(check('warn', what, `${detail} — expires in ${days} day(s)`, 'renew the certificate soon'));
      else out.push(check('ok', what, detail));
    }
    return out;
  } catch (e) {
    return [check('fail', 'daemon', (e as Error).message)];
  } finally {
    client.close();
  }
}

/** The signing tools of the README's recipes: missing ones are warnings (only needed to use them). */
function toolChecks(): Check[] {
  const reqs = loadRequirements().filter((r) => CONSUMER_PACKAGES.includes(r.package));
  return reqs.map((r) =>
    isMet(r) ? check('ok', r.name, 'installed') : check('warn', r.name, 'not installed (needed only to sign with it)', aptLine([r])),
  );
}

/** A socket of a systemd unit in docs/service/ is named as such; the system unit's is found when the default has none. */
function serviceCheck(svc: ReturnType<typeof serviceSocket>): Check[] {
  if (svc.switched) {
    return [check('warn', 'service socket', `no socket at the default path; the system service's socket ${svc.socket} is there (checked below)`, `export SIGNBRIDGE_SOCKET=${svc.socket} so tools find it`)];
  }
  if (svc.unit) return [check('ok', 'service socket', `${svc.socket} is where the systemd ${svc.unit} unit listens (docs/service/)`)];
  return [];
}

/** `explicit`: the socket came from --socket or SIGNBRIDGE_SOCKET, so doctor never looks elsewhere. */
export async function doctor(requested: string, now = new Date(), explicit = true): Promise<Check[]> {
  const svc = serviceSocket(requested, explicit);
  const socket = svc.socket;
  const checks = [nodeCheck(), moduleCheck(), addonCheck(), pkcs11BindingCheck(), ...serviceCheck(svc), ...socketChecks(socket)];
  // a missing socket directory already says "not running"; do not repeat it as a connect error
  if (!checks.some((c) => c.status === 'fail' && (c.what === 'socket directory' || c.what === 'socket'))) {
    checks.push(...(await daemonChecks(socket, now)));
  }
  if (process.env.SIGNBRIDGE_AUTOSTART) checks.push(check('ok', 'autostart', `SIGNBRIDGE_AUTOSTART is set: the module starts the daemon when none answers`));
  checks.push(...toolChecks());
  return checks;
}

export async function runDoctor(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { json: { type: 'boolean' }, socket: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(DOCTOR_HELP);
    return 0;
  }
  const checks = await doctor(values.socket ?? defaultSocketPath(), new Date(), values.socket !== undefined || !!process.env.SIGNBRIDGE_SOCKET);
  const failed = checks.some((c) => c.status === 'fail');
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ ok: !failed, checks }, null, 2)}\n`);
  } else {
    const mark: Record<Status, string> = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' };
    for (const c of checks) {
      process.stdout.write(`${mark[c.status]}  ${c.what}: ${c.detail}\n`);
      if (c.fix && c.status !== 'ok') process.stdout.write(`      fix: ${c.fix}\n`);
    }
    process.stdout.write(failed ? '\nsignbridge doctor: problems found (FAIL lines above)\n' : '\nsignbridge doctor: all checks passed\n');
  }
  return failed ? 1 : 0;
}
