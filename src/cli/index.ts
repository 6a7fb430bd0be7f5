#!/usr/bin/env node
// `signbridge` command line. Errors users can hit print one line that says what to do next;
// a SignbridgeError's code picks the exit status (see `signbridge daemon --help`).
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EXIT, VERSION } from '../core/exit-codes.js';
import { MODULE_PATH_HELP, USAGE } from './help.js';

// Each command's code is imported when it runs: `signbridge module-path` and `--help` load no
// daemon, backend or logger (bench/cli-startup.mjs measures them).
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
        process.stdout.write(MODULE_PATH_HELP);
        return EXIT.OK;
      }
      if (rest.length > 0) throw (await import('../core/errors.js')).sbError('SIGNBRIDGE_ERR_USAGE', { detail: `unexpected argument ${rest[0]!}`, command: cmd });
      return (await import('./module-path.js')).runModulePath();
    case 'daemon':
      return (await import('./daemon.js')).runDaemonCommand(rest);
    case 'keys':
      return (await import('./keys.js')).runKeys(rest);
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
      return (await import('./doctor.js')).runDoctor(rest);
    case 'otp':
      return (await import('./otp.js')).runOtp(rest);
    case 'windows':
      return (await import('./windows.js')).runWindows(rest);
    default:
      process.stderr.write(`signbridge: unknown command "${cmd}"\n\n${USAGE}`);
      return EXIT.CONFIG;
  }
}

async function report(e: unknown): Promise<number> {
  // the error catalogue is loaded only on this path (`--help` starts without it)
  const { SignbridgeError } = await import('../core/errors.js');
  if (e instanceof SignbridgeError) {
    process.stderr.write(`signbridge: ${e.message}\n`);
    // the daemon's table of codes → exit statuses (it knows the STM errors too)
    return (await import('../daemon/index.js')).exitCodeFor(e);
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
    async (e: unknown) => {
      process.exitCode = await report(e);
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
