// `signbridge demo --backend csc`: the document-signing chain. CSC emulator (HTTPS, OAuth 2.0,
// keys in SoftHSMv2) → signbridge daemon --backend csc → libsignbridge-pkcs11.so in an NSS
// database → pdfsig signs a PDF with doc-rsa, the OTP from `signbridge otp` as its -kpw (the
// context-specific login) → pdfsig verifies it with the emulator CA trusted.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { createLogger } from '../daemon/logger.js';
import { cliPath, startDaemon, type RunningDaemon } from './daemon-process.js';
import { runCommand } from './osslsigncode.js';
import { minimalPdf } from './pdf.js';
import { nssDbWithModule, pdfsigSign, pdfsigVerify } from './pdfsig.js';

const TOKEN = 'signbridge-csc';
const LABEL = 'doc-rsa';

export async function cscChain(o: { stateDir: string; socket: string; logFile: string; module: string; say: (s: string) => void }): Promise<number> {
  const { stateDir, socket, logFile, module, say } = o;
  const emuDir = join(stateDir, 'emulator');
  const emuLog = join(stateDir, 'emulator.log');
  say(`1/5 starting the CSC emulator in ${emuDir} (HTTPS + OAuth 2.0; credentials doc-rsa RSA-3072 and doc-ec P-256 in its SoftHSMv2 token, an OTP per authorisation)…`);
  const { startCscEmulator } = (await import('../emulator/csc/index.js' as string)) as typeof import('../emulator/csc/index.js');
  let emu: Awaited<ReturnType<typeof startCscEmulator>>;
  try {
    emu = await startCscEmulator({ stateDir: emuDir, logger: createLogger('info', pino.destination({ dest: emuLog, sync: true })) });
  } catch (e) {
    process.stderr.write(`signbridge demo: cannot start the CSC emulator: ${(e as Error).message}\n`);
    return 1;
  }
  const caFile = emu.env.SIGNBRIDGE_CSC_CA_FILE!;
  say(`    ${emu.url} (log: ${emuLog}); CA certificate ${caFile}`);
  // the daemon gets the service's address in its environment and the secret in a 0600 file
  const secretFile = join(stateDir, 'csc-client-secret');
  writeFileSync(secretFile, `${emu.env.SIGNBRIDGE_CSC_CLIENT_SECRET}\n`, { mode: 0o600 });
  const env = { SIGNBRIDGE_CSC_URL: emu.env.SIGNBRIDGE_CSC_URL, SIGNBRIDGE_CSC_CLIENT_ID: emu.env.SIGNBRIDGE_CSC_CLIENT_ID, SIGNBRIDGE_CSC_CA_FILE: caFile };
  const input = join(stateDir, 'demo.pdf');
  const output = join(stateDir, 'demo.doc-rsa.signed.pdf');
  const nssDir = join(stateDir, 'nss');
  let daemon: RunningDaemon | undefined;
  let verdict = '';
  try {
    say(`2/5 starting the signbridge daemon --backend csc on ${socket} (log: ${logFile})…`);
    daemon = await startDaemon({ backend: 'csc', socket, logFile, env, extraArgs: ['--csc-client-secret-file', secretFile] });
    const toolEnv = { ...process.env, SIGNBRIDGE_SOCKET: socket };
    say(`3/5 an NSS database in ${nssDir} with the module (modutil) and the emulator CA; \`signbridge otp ${LABEL}\`…`);
    for (const r of await nssDbWithModule(nssDir, module, caFile, toolEnv)) if (r.status !== 0) throw new Error(`${r.stderr.trim() || r.stdout.trim()}`);
    const otpRun = await runCommand(process.execPath, [cliPath(), 'otp', LABEL, '--csc-client-secret-file', secretFile], { env: { ...process.env, ...env } });
    if (otpRun.status !== 0) throw new Error(`signbridge otp ${LABEL} failed: ${otpRun.stderr.trim()}`);
    const otp = readFileSync(join(emuDir, 'otp', LABEL), 'utf8').trim();
    say(`    the emulator "sent" the OTP to ${join(emuDir, 'otp', LABEL)}`);
    writeFileSync(input, minimalPdf('signed by signbridge through a CSC service'));
    say(`4/5 pdfsig -add-signature -nick ${TOKEN}:${LABEL} -kpw <OTP> ${input}…`);
    const s = await pdfsigSign({ nssDir, token: TOKEN, label: LABEL, otp, input, output, env: toolEnv });
    if (s.status !== 0) throw new Error(`pdfsig could not sign: ${s.stderr.trim() || s.stdout.trim()}`);
    const v = await pdfsigVerify(nssDir, output, { ...process.env });
    verdict = v.stdout;
  } catch (e) {
    process.stderr.write(`signbridge demo: ${(e as Error).message}\n`);
    return 1;
  } finally {
    say('5/5 stopping the daemon and the emulator…');
    await daemon?.stop();
    await emu.stop();
  }
  const stats = emu.stats();
  say(`    the emulator signed ${stats.hashesSigned} hash(es) in ${stats.requests['POST /csc/v1/signatures/signHash'] ?? 0} signHash call(s)`);
  const valid = /Signature Validation: Signature is Valid\./.test(verdict);
  const trusted = /Certificate Validation: Certificate is Trusted\./.test(verdict);
  say('');
  say(verdict.trim());
  say('');
  if (!valid || !trusted) {
    process.stderr.write(`signbridge demo: pdfsig did not report a valid signature with a trusted certificate (daemon log: ${logFile})\n`);
    return 1;
  }
  say(`The PDF signature verified. Check it yourself:\n  pdfsig -nssdir sql:${nssDir} ${output}`);
  return 0;
}
