// `signbridge emulator --api csc …`: starts the CSC emulator and prints where env.sh is and the
// non-secret variables (the client secret is only in env.sh, mode 0600).

import { CSC_ENV_ORDER, CSC_SECRET_ENV, startCscEmulator, type CscEmulatorOptions, type RunningCscEmulator } from './index.js';

export async function startCscFromCli(o: CscEmulatorOptions): Promise<RunningCscEmulator> {
  const emu = await startCscEmulator(o);
  const out: string[] = [
    `signbridge CSC emulator listening on ${emu.url} (CSC API v1 at ${emu.url}/csc/v1, OAuth 2.0 at ${emu.url}/oauth2/token)`,
    `state: ${emu.stateDir}`,
    `credentials: ${emu.credentials().map((c) => `${c.id} (${c.key_alg}, ${c.status})`).join(', ')}`,
    `OTPs are written to ${emu.stateDir}/otp/<credentialID>`,
    '',
    'Point a daemon at it:',
    `  . ${emu.envFile} && signbridge daemon --backend csc`,
    '',
    `${emu.envFile} sets:`,
    ...CSC_ENV_ORDER.map((k) => (CSC_SECRET_ENV.has(k) ? `  ${k}=<secret, in env.sh>` : `  ${k}=${emu.env[k]}`)),
    '',
    `Admin (loopback only): ${emu.adminUrl}/faults, ${emu.adminUrl}/stats, ${emu.adminUrl}/credentials`,
    'Stop with Ctrl-C or SIGTERM.',
    '',
  ];
  process.stdout.write(out.join('\n'));
  return emu;
}
