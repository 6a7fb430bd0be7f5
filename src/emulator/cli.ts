// `signbridge emulator [--api stm|csc] --state-dir <dir> [--listen host:port] [--auth mtls|api-key|either] [faults…]`
// Runs in the foreground until SIGINT/SIGTERM. Prints where env.sh is and the non-secret
// variables; secrets (SM_API_KEY, SM_CLIENT_CERT_PASSWORD, SIGNBRIDGE_CSC_CLIENT_SECRET) are only
// in env.sh (mode 0600). `--api csc` runs the CSC emulator instead (csc/cli.ts, docs/csc-emulator.md).

import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createLogger } from '../daemon/logger.js';
import { EmulatorError } from './errors.js';
import { startCscFromCli } from './csc/cli.js';
import { validateFaults, type Faults } from './faults.js';
import { ENV_ORDER, SECRET_ENV, startEmulator } from './index.js';
import type { AuthMode } from './server.js';

export const EMULATOR_HELP = `Usage: signbridge emulator [--api stm|csc] --state-dir <dir> [options]

A local DigiCert Software Trust Manager emulator: HTTPS with mTLS and/or API key, keys in a
SoftHSMv2 token, certificates chained to the emulator's own CA (docs/emulator.md).
The first run creates everything in <dir>, including two keypairs (codesign-rsa, codesign-ec);
later runs reuse it. Each start writes <dir>/env.sh, so that
  . <dir>/env.sh && signbridge daemon --backend stm
reaches this emulator.

With --api csc: a Cloud Signature Consortium API v1 emulator (DigiCert Document Trust Manager)
instead, with OAuth 2.0 client credentials and OTP-authorised credentials doc-rsa and doc-ec;
  . <dir>/env.sh && signbridge daemon --backend csc
reaches it, and every OTP it sends is written to <dir>/otp/<credentialID> (docs/csc-emulator.md).

Options:
  --api <api>            stm (default) or csc
  --state-dir <dir>      where the CA, client certificate, API key and token live (required)
  --listen <host:port>   default 127.0.0.1:0 (a free port; env.sh gets the one chosen)
  --auth <mode>          mtls | api-key | either (default either)
  --latency-ms <n>       add n ms before every API answer
  --rate-429 <p>         answer this fraction (0..1) of API calls with 429 and Retry-After
  --retry-after <s>      Retry-After seconds on 429 (default 1)
  --rate-503 <p>         answer this fraction (0..1) of API calls with 503
  --drop-rate <p>        close this fraction (0..1) of connections without an answer
  --log-level <level>    pino level (default info), on stderr
  --token-ttl <s>        csc: access token lifetime in seconds (default 3600)
  --sad-ttl <s>          csc: SAD lifetime in seconds (default 3600)
  --otp-ttl <s>          csc: OTP lifetime in seconds (default 300)
Faults can also be changed while running: POST <url>/__admin/faults (loopback only).
`;

const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_CONFIG = 2;

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new EmulatorError('SIGNBRIDGE_ERR_EMULATOR_CONFIG', `--${name} needs a number, not "${v}"`);
  return n;
}

export async function runEmulatorCli(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        'state-dir': { type: 'string' },
        listen: { type: 'string' },
        auth: { type: 'string' },
        'latency-ms': { type: 'string' },
        'rate-429': { type: 'string' },
        'retry-after': { type: 'string' },
        'rate-503': { type: 'string' },
        'drop-rate': { type: 'string' },
        'log-level': { type: 'string' },
        api: { type: 'string' },
        'token-ttl': { type: 'string' },
        'sad-ttl': { type: 'string' },
        'otp-ttl': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    process.stderr.write(`signbridge emulator: ${(e as Error).message}: see \`signbridge emulator --help\`\n`);
    return EXIT_CONFIG;
  }
  if (values.help) {
    process.stdout.write(EMULATOR_HELP);
    return EXIT_OK;
  }
  let faults: Faults;
  const api = values.api ?? 'stm';
  const ttls: Record<string, number | undefined> = {};
  try {
    if (api !== 'stm' && api !== 'csc') throw new EmulatorError('SIGNBRIDGE_ERR_EMULATOR_CONFIG', `--api must be stm or csc (not "${api}")`);
    if (api === 'csc' && values.auth !== undefined) throw new EmulatorError('SIGNBRIDGE_ERR_EMULATOR_CONFIG', '--auth is for the STM emulator; the CSC emulator authenticates with OAuth 2.0 client credentials');
    for (const k of ['token-ttl', 'sad-ttl', 'otp-ttl'] as const) {
      if (values[k] !== undefined && api !== 'csc') throw new EmulatorError('SIGNBRIDGE_ERR_EMULATOR_CONFIG', `--${k} is for --api csc`);
      const n = num(k, values[k]);
      if (n !== undefined && (!Number.isInteger(n) || n < 1)) throw new EmulatorError('SIGNBRIDGE_ERR_EMULATOR_CONFIG', `--${k} needs whole seconds >= 1`);
      ttls[k] = n;
    }
    if (!values['state-dir']) throw new EmulatorError('SIGNBRIDGE_ERR_EMULATOR_CONFIG', '--state-dir <dir> is required (an empty or new directory on the first run)');
    if (values.auth !== undefined && !['mtls', 'api-key', 'either'].includes(values.auth)) {
      throw new EmulatorError('SIGNBRIDGE_ERR_EMULATOR_CONFIG', `--auth must be mtls, api-key or either (not "${values.auth}")`);
    }
    const raw: Record<string, unknown> = {
      latencyMs: num('latency-ms', values['latency-ms']),
      rate429: num('rate-429', values['rate-429']),
      retryAfterS: num('retry-after', values['retry-after']),
      rate503: num('rate-503', values['rate-503']),
      dropRate: num('drop-rate', values['drop-rate']),
    };
    for (const k of Object.keys(raw)) if (raw[k] === undefined) delete raw[k];
    try {
      faults = validateFaults(raw);
    } catch (e) {
      throw new EmulatorError('SIGNBRIDGE_ERR_EMULATOR_CONFIG', `${(e as Error).message} (see \`signbridge emulator --help\`)`);
    }
  } catch (e) {
    process.stderr.write(`signbridge emulator: ${(e as Error).message}\n`);
    return EXIT_CONFIG;
  }

  const logger = createLogger(values['log-level'] ?? 'info');
  if (api === 'csc') {
    let csc;
    try {
      csc = await startCscFromCli({
        stateDir: values['state-dir']!,
        ...(values.listen ? { listen: values.listen } : {}),
        faults,
        logger,
        ...(ttls['token-ttl'] ? { tokenTtlS: ttls['token-ttl'] } : {}),
        ...(ttls['sad-ttl'] ? { sadTtlS: ttls['sad-ttl'] } : {}),
        ...(ttls['otp-ttl'] ? { otpTtlS: ttls['otp-ttl'] } : {}),
      });
    } catch (e) {
      process.stderr.write(`signbridge emulator: ${(e as Error).message}\n`);
      return e instanceof EmulatorError && e.code === 'SIGNBRIDGE_ERR_EMULATOR_CONFIG' ? EXIT_CONFIG : EXIT_FAILURE;
    }
    return untilSignal(logger, csc.stop);
  }
  let emu;
  try {
    emu = await startEmulator({
      stateDir: values['state-dir'],
      ...(values.listen ? { listen: values.listen } : {}),
      auth: (values.auth ?? 'either') as AuthMode,
      faults,
      logger,
    });
  } catch (e) {
    process.stderr.write(`signbridge emulator: ${(e as Error).message}\n`);
    return e instanceof EmulatorError && e.code === 'SIGNBRIDGE_ERR_EMULATOR_CONFIG' ? EXIT_CONFIG : EXIT_FAILURE;
  }

  const out: string[] = [
    `signbridge STM emulator listening on ${emu.url} (auth: ${values.auth ?? 'either'})`,
    `state: ${emu.stateDir}`,
    `keypairs: ${emu.keypairs().map((k) => `${k.alias} (${k.key_alg}, id ${k.id})`).join(', ')}`,
    '',
    'Point a daemon at it:',
    `  . ${emu.envFile} && signbridge daemon --backend stm`,
    '',
    `${emu.envFile} sets:`,
    ...ENV_ORDER.map((k) => (SECRET_ENV.has(k) ? `  ${k}=<secret, in env.sh>` : `  ${k}=${emu.env[k]}`)),
    '',
    `Admin (loopback only): ${emu.adminUrl}/faults, ${emu.adminUrl}/stats`,
    'Stop with Ctrl-C or SIGTERM.',
    '',
  ];
  process.stdout.write(out.join('\n'));

  return untilSignal(logger, emu.stop);
}

/** Runs until SIGINT/SIGTERM, then stops the emulator. */
async function untilSignal(logger: { info(o: object, m: string): void }, stop: () => Promise<void>): Promise<number> {
  await new Promise<void>((resolveStop) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      logger.info({ signal: sig }, 'stopping');
      resolveStop();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  try {
    await stop();
  } catch (e) {
    process.stderr.write(`signbridge emulator: error while stopping: ${(e as Error).message}\n`);
    return EXIT_FAILURE;
  }
  return EXIT_OK;
}


// `node lib/emulator/cli.js …` works too (tests, and until `signbridge emulator` is wired).
function isEntry(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
if (isEntry()) {
  void runEmulatorCli(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
