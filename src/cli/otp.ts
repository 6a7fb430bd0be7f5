// `signbridge otp <credential>`: asks the CSC service to send the user an OTP for one credential
// (credentials/sendOTP, CSC API v1 §11.6). The OTP reaches the user by the service's channel
// (SMS, app; the emulator writes it to a file), never signbridge; the user then gives it to the
// signing tool as its context-specific login (docs/csc-backend.md "Authorisation").
import { parseArgs } from 'node:util';
import { sbError } from '../core/errors.js';
import { readCaFile, readCscSecretFile } from '../backends/csc/credentials.js';
import { CscClient } from '../backends/csc/http.js';
import { cscConfig, cscEnvOptions } from '../daemon/csc-config.js';
import { USER_AGENT } from '../daemon/index.js';

export const OTP_HELP = `Usage: signbridge otp <credentialID> [--csc-url <url>] [--csc-client-id <id>]
                      [--csc-client-secret-file <file>] [--csc-ca-file <file>]
       signbridge otp <credentialID> --authorize [--socket <path>]   (the OTP on stdin)

Asks the CSC service (csc backend) to send an OTP for <credentialID> to its owner. Give that OTP
to the signing tool as the key's context-specific login: pdfsig -kpw <otp>; pkcs11-provider's
pkcs11-module-token-pin = file:<otp file>; C_Login(CKU_CONTEXT_SPECIFIC) after C_SignInit in code.
With --authorize, the OTP read from stdin (never an argument) goes to the running daemon instead
(protocol.md "AUTHORIZE"): the daemon authorises the credential and keeps the SAD for the
signatures it allows, so tools that never do a context-specific login (osslsigncode, jarsigner)
sign with it until it is used up or expires.
The service settings are the daemon's: $SIGNBRIDGE_CSC_URL, $SIGNBRIDGE_CSC_CLIENT_ID,
$SIGNBRIDGE_CSC_CLIENT_SECRET (or --csc-client-secret-file, mode 0600), $SIGNBRIDGE_CSC_CA_FILE.
`;

export async function runOtp(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      'csc-url': { type: 'string' },
      'csc-client-id': { type: 'string' },
      'csc-client-secret-file': { type: 'string' },
      'csc-ca-file': { type: 'string' },
      authorize: { type: 'boolean' },
      socket: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: true,
  });
  if (values.help) {
    process.stdout.write(OTP_HELP);
    return 0;
  }
  const credential = positionals[0];
  if (!credential || positionals.length > 1) throw sbError('SIGNBRIDGE_ERR_USAGE', { detail: 'give exactly one credentialID (`signbridge keys` lists them as labels)', command: 'otp' });
  if (values.authorize) return authorizeThroughDaemon(credential, values.socket, env);
  const { help: _h, authorize: _a, socket: _s, ...flags } = values;
  const defined = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined));
  const cfg = cscConfig({ ...cscEnvOptions(env), ...defined }, { signTimeoutMs: 30_000, verifySignatures: true });
  const secret = env.SIGNBRIDGE_CSC_CLIENT_SECRET || (cfg.clientSecretFile ? readCscSecretFile(cfg.clientSecretFile, 'CSC client secret') : '');
  if (!secret) throw sbError('SIGNBRIDGE_ERR_USAGE', { detail: 'no OAuth client secret: set SIGNBRIDGE_CSC_CLIENT_SECRET or give --csc-client-secret-file', command: 'otp' });
  const client = new CscClient({ url: cfg.url, clientId: cfg.clientId, clientSecret: secret, ca: cfg.caFile ? readCaFile(cfg.caFile) : undefined, userAgent: USER_AGENT });
  try {
    const deadline = Date.now() + 30_000;
    await client.info({ what: 'the info request', deadline, budgetMs: 30_000 });
    await client.sendOtp(credential, { what: `sendOTP for ${credential}`, deadline, budgetMs: 30_000 });
  } finally {
    await client.close();
  }
  process.stdout.write(`an OTP for ${credential} was sent; give it to the signing tool as the key's login (e.g. pdfsig -kpw <otp>)\n`);
  return 0;
}

/** The OTP from stdin → AUTHORIZE for the key labelled `credential` on the daemon's socket. */
async function authorizeThroughDaemon(credential: string, socket: string | undefined, env: NodeJS.ProcessEnv): Promise<number> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const otp = Buffer.from(Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0]!.trim(), 'utf8');
  chunks.forEach((c) => c.fill(0));
  if (otp.length === 0) throw sbError('SIGNBRIDGE_ERR_USAGE', { detail: 'no OTP on stdin: e.g. `signbridge otp doc-rsa --authorize < otp-file`', command: 'otp' });
  const { DaemonClient } = await import('../ipc/client.js');
  const { defaultSocketPath } = await import('../core/paths.js');
  const { attr } = await import('../core/objects.js');
  const { CKA_LABEL } = await import('../core/pkcs11.js');
  const c = await DaemonClient.connect({ socketPath: socket ?? defaultSocketPath(env) });
  try {
    const inv = await c.inventory();
    const key = inv.slots.flatMap((s) => s.objects).find((o) => o.key_handle.length > 0 && attr(o, CKA_LABEL)?.toString() === credential);
    if (!key) throw sbError('SIGNBRIDGE_ERR_USAGE', { detail: `the daemon serves no key labelled ${credential} (\`signbridge keys\` lists them)`, command: 'otp' });
    const n = await c.authorize(key.key_handle, otp);
    process.stdout.write(`${credential} is authorised for ${n} signature(s); tools sign with it without a context-specific login until they are used or the authorisation expires\n`);
    return 0;
  } finally {
    otp.fill(0);
    c.close();
  }
}
