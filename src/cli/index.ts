#!/usr/bin/env node
// `signbridge` command line. Errors users can hit print one line that says what to do next;
// a SignbridgeError's code picks the exit status (see `signbridge daemon --help`).
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SignbridgeError, sbError } from '../core/errors.js';
import { EXIT, VERSION, exitCodeFor } from '../daemon/index.js';
import { DAEMON_HELP, runDaemonCommand } from './daemon.js';
import { DOCTOR_HELP, runDoctor } from './doctor.js';
import { KEYS_HELP, runKeys } from './keys.js';
import { MODULE_PATH_HELP, runModulePath } from './module-path.js';

const USAGE = `Usage: signbridge <command> [options]

Commands:
  module-path   print the path of libsignbridge-pkcs11.so (give it to your signing tool)
  daemon        run the signing daemon (see \`signbridge daemon --help\`)
  keys          list the keys a running daemon serves, with their pkcs11: URIs
  demo          sign a Windows executable end to end: module → daemon (stm) → STM emulator
                (\`--backend pkcs11\`: the local chain with a throw-away SoftHSMv2 token)
  emulator      a local DigiCert Software Trust Manager emulator (\`signbridge emulator --help\`)
  doctor        check the module, the daemon, its keys and the signing tools; each problem with its fix

Run \`signbridge <command> --help\` for a command's options.
`;

const HELP: Record<string, string> = { 'module-path': MODULE_PATH_HELP, daemon: DAEMON_HELP, keys: KEYS_HELP, doctor: DOCTOR_HELP };

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(USAGE);
    return cmd === undefined ? EXIT.CONFIG : EXIT.OK;
  }
  if (cmd === '--version' || cmd === '-v') {
    process.stdout.write(`signbridge ${VERSION}\n`);
    return EXIT.OK;
  }
  const wantsHelp = rest.includes('--help') || rest.includes('-h');
  switch (cmd) {
    case 'module-path':
      if (wantsHelp) {
        process.stdout.write(HELP[cmd]!);
        return EXIT.OK;
      }
      if (rest.length > 0) throw sbError('SIGNBRIDGE_ERR_USAGE', { detail: `unexpected argument ${rest[0]!}`, command: cmd });
      return runModulePath();
    case 'daemon':
      return runDaemonCommand(rest);
    case 'keys':
      return runKeys(rest);
    case 'demo': {
      // src/demo/ is written separately; loaded lazily so other commands never depend on it.
      const demo = (await import('../demo/demo.js' as string)) as { runDemo(args: string[]): Promise<number | void> };
      return (await demo.runDemo(rest)) ?? EXIT.OK;
    }
    case 'emulator': {
      // src/emulator/ is written separately; loaded lazily (it brings graphene and the SoftHSMv2 set-up).
      const emu = (await import('../emulator/cli.js' as string)) as { runEmulatorCli(args: string[]): Promise<number> };
      return emu.runEmulatorCli(rest);
    }
    case 'doctor':
      return runDoctor(rest);
    default:
      process.stderr.write(`signbridge: unknown command "${cmd}"\n\n${USAGE}`);
      return EXIT.CONFIG;
  }
}

function report(e: unknown): number {
  if (e instanceof SignbridgeError) {
    process.stderr.write(`signbridge: ${e.message}\n`);
    return exitCodeFor(e);
  }
  // node:util parseArgs errors (unknown option, missing value) are usage errors.
  const code = (e as { code?: string })?.code;
  if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
    process.stderr.write(`signbridge: ${(e as Error).message}: see \`signbridge <command> --help\`\n`);
    return EXIT.CONFIG;
  }
  process.stderr.write(`signbridge: unexpected error: ${(e as Error)?.stack ?? String(e)}\n`);
  return EXIT.FAILURE;
}

/** The CLI entry: run `main` and set the exit code (never calls process.exit: stdout is flushed). */
export function run(argv: string[]): Promise<void> {
  return main(argv).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.exitCode = report(e);
    },
  );
}

// Run only when executed (bin symlink or `node lib/cli/index.js`), not when imported.
function isEntry(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
if (isEntry()) void run(process.argv.slice(2));
