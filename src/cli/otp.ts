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

Asks the CSC service (csc backend) to send an OTP for <credentialID> to its owner. Give that OTP
to the signing tool as the key's context-specific login: pdfsig -kpw <otp>; pkcs11-provider's
pkcs11-module-token-pin = file:<otp file>; C_Login(CKU_CONTEXT_SPECIFIC) after C_SignInit in code.
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
  const { help: _h, ...flags } = values;
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
