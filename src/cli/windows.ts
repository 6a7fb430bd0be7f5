// `signbridge windows install-ksp | uninstall-ksp | certsync | certdesync` (docs/windows.md
// "signtool"): the Windows-only steps that let signtool reach the daemon's keys through CNG.
// The registry and certificate-store work is done by signbridge-windows.exe (native/windows),
// shipped beside the PKCS#11 module; this file finds it, feeds it the daemon's certificates and
// relays what it prints (the exact registry change, each certificate linked or removed).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { EXIT } from '../core/exit-codes.js';
import { sbError } from '../core/errors.js';
import { defaultSocketPath } from '../core/paths.js';
import { DaemonClient } from '../ipc/client.js';
import { modulePath } from '../native/loader.js';
import { WINDOWS_HELP } from './help.js';
import { certificatesOf } from './windows-certs.js';

export { WINDOWS_HELP } from './help.js';

const SUBCOMMANDS = ['install-ksp', 'uninstall-ksp', 'certsync', 'certdesync'] as const;
type Sub = (typeof SUBCOMMANDS)[number];

/** A file shipped beside the PKCS#11 module (prebuilds/win32-x64/ or a local build). */
function beside(file: string): string {
  const p = join(dirname(modulePath()), file);
  if (!existsSync(p)) throw sbError('SIGNBRIDGE_ERR_NATIVE_NOT_BUILT', { what: file, tried: p, alternative: 'reinstall signbridge (npm install -g signbridge) so its win32-x64 prebuilds are complete' });
  return p;
}

/** Runs signbridge-windows.exe; its output goes straight to ours. Exit 4 = needs an administrator. */
function helper(args: string[]): number {
  const r = spawnSync(beside('signbridge-windows.exe'), args, { stdio: ['ignore', 'inherit', 'inherit'], windowsHide: true });
  if (r.error) throw r.error;
  if (r.status === 0) return EXIT.OK;
  return r.status === 4 ? EXIT.CONFIG : EXIT.FAILURE;
}

async function certsync(socket: string): Promise<number> {
  const client = await DaemonClient.connect({ socketPath: socket, clientName: `signbridge windows certsync pid=${process.pid}` });
  let certs;
  try {
    certs = certificatesOf((await client.inventory()).slots);
  } finally {
    client.close();
  }
  let rc: number = EXIT.OK;
  for (const c of certs) {
    if (!c.cng) {
      process.stdout.write(`skipped "${c.name}": CNG has no algorithm for this key type (RSA and ECDSA keys only)\n`);
      continue;
    }
    if (!c.der) {
      process.stdout.write(`skipped "${c.name}": the daemon has no certificate for it (signtool finds keys by certificate)\n`);
      continue;
    }
    const r = helper(['certsync', c.name, c.der.toString('hex')]);
    if (r !== EXIT.OK) rc = r;
  }
  if (certs.length === 0) process.stdout.write('The daemon serves no keys: nothing to link (check its log for keys it skipped).\n');
  return rc;
}

export async function runWindows(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { dll: { type: 'string' }, socket: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
    allowPositionals: true,
  });
  const sub = positionals[0] as Sub | undefined;
  if (values.help || sub === undefined) {
    process.stdout.write(WINDOWS_HELP);
    return values.help ? EXIT.OK : EXIT.CONFIG;
  }
  if (!(SUBCOMMANDS as readonly string[]).includes(sub) || positionals.length > 1)
    throw sbError('SIGNBRIDGE_ERR_USAGE', { detail: `"${positionals.join(' ')}": expected one of ${SUBCOMMANDS.join(', ')}`, command: 'windows' });
  if (process.platform !== 'win32')
    throw sbError('SIGNBRIDGE_ERR_USAGE', { detail: `${sub} changes the Windows registry and certificate store: run it on Windows (on ${process.platform}, give tools the PKCS#11 module: signbridge module-path)`, command: 'windows' });
  switch (sub) {
    case 'install-ksp':
      return helper(['install-ksp', values.dll ?? beside('signbridge-ksp.dll')]);
    case 'uninstall-ksp':
      return helper(['uninstall-ksp']);
    case 'certsync':
      return certsync(values.socket ?? defaultSocketPath());
    case 'certdesync':
      return helper(['certdesync']);
  }
}
