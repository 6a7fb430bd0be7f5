// The TLS material and API key of the STM connection, read from files and the environment only
// (never argv; docs/stm-backend.md "Credentials"). Checked once at start with
// tls.createSecureContext, so a wrong PKCS#12 password is a configuration error with a clear
// sentence instead of a failed handshake later.
import { readFileSync, statSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { stmError } from './errors.js';
import { groupOrOthersCanRead } from '../../core/paths.js';

export interface StmCredentialFiles {
  /** PKCS#12 (.p12/.pfx) or PEM certificate (optionally with its key in the same file). */
  clientCertFile?: string | undefined;
  /** PEM private key, when the certificate file is PEM without one. */
  clientKeyFile?: string | undefined;
  /** PKCS#12 password or PEM key passphrase (SM_CLIENT_CERT_PASSWORD or a password file). */
  clientCertPassword?: string | undefined;
  /** CA bundle (PEM) that issued the server certificate; default: Node's bundled roots. */
  caFile?: string | undefined;
  apiKey?: string | undefined;
}

/** What undici's connector takes (tls.connect options). */
export interface TlsOptions {
  pfx?: Buffer;
  passphrase?: string;
  cert?: Buffer;
  key?: Buffer;
  ca?: Buffer;
  rejectUnauthorized: boolean;
}

function read(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw stmError('SIGNBRIDGE_ERR_STM_CONFIG', { detail: `cannot read ${what} ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` });
  }
}

const isPem = (b: Buffer): boolean => b.subarray(0, 256).toString('latin1').includes('-----BEGIN ');
const hasPemKey = (b: Buffer): boolean => /-----BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.test(b.toString('latin1'));

/** A secret from a file: trailing newline stripped; refused when group/others can read it. */
export function readSecretFile(file: string, what: string): string {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (e) {
    throw stmError('SIGNBRIDGE_ERR_STM_CONFIG', { detail: `cannot read ${what} file ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})` });
  }
  if (groupOrOthersCanRead(mode)) {
    throw stmError('SIGNBRIDGE_ERR_STM_CONFIG', { detail: `${what} file ${file} is readable by group or others (mode 0${(mode & 0o777).toString(8)}): chmod 600 it` });
  }
  const v = read(file, `${what} file`).toString('utf8').replace(/\r?\n$/, '');
  if (v === '') throw stmError('SIGNBRIDGE_ERR_STM_CONFIG', { detail: `${what} file ${file} is empty` });
  return v;
}

/** Build (and check) the TLS options; throws SIGNBRIDGE_ERR_STM_CONFIG with what to fix. */
export function tlsOptions(c: StmCredentialFiles, opts: { skipVerify: boolean }): TlsOptions {
  const out: TlsOptions = { rejectUnauthorized: !opts.skipVerify };
  if (c.caFile) out.ca = read(c.caFile, 'the CA file');
  if (c.clientCertFile) {
    const certBytes = read(c.clientCertFile, 'the client certificate');
    if (isPem(certBytes)) {
      out.cert = certBytes;
      if (c.clientKeyFile) out.key = read(c.clientKeyFile, 'the client key');
      else if (hasPemKey(certBytes)) out.key = certBytes;
      else throw stmError('SIGNBRIDGE_ERR_STM_CONFIG', { detail: `${c.clientCertFile} is a PEM certificate without a private key: give the key with --stm-client-key-file / SM_CLIENT_KEY_FILE, or use the PKCS#12 file` });
    } else {
      out.pfx = certBytes;
    }
    if (c.clientCertPassword !== undefined) out.passphrase = c.clientCertPassword;
    try {
      createSecureContext({ ...out });
    } catch (e) {
      // OpenSSL's reason only ("mac verify failure", "bad decrypt"): never the password itself.
      const reason = (e as Error).message.replace(/\s+/g, ' ').slice(0, 160);
      const hint = out.pfx
        ? 'check SM_CLIENT_CERT_PASSWORD (the PKCS#12 password) and that the file is the .p12 DigiCert ONE issued'
        : 'check that the certificate and key files belong together (and the key passphrase in SM_CLIENT_CERT_PASSWORD)';
      throw stmError('SIGNBRIDGE_ERR_STM_CONFIG', { detail: `cannot use the client certificate ${c.clientCertFile} (${reason}): ${hint}` });
    }
  } else if (c.clientKeyFile) {
    throw stmError('SIGNBRIDGE_ERR_STM_CONFIG', { detail: 'a client key file was given without a client certificate file (--stm-client-cert-file / SM_CLIENT_CERT_FILE)' });
  }
  return out;
}
