// JSON views of the CSC emulator: the credentials/info answer (CSC API v1.0.4.0 §11.5).

import { X509Certificate } from 'node:crypto';
import { algoOids, OIDS } from './algorithms.js';
import type { CredentialRecord } from './store.js';

/** X.509 time as the spec's examples give it: GeneralizedTime "YYYYMMDDHHMMSSZ". */
function generalized(d: Date): string {
  return d.toISOString().replace(/[-:T]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

function certStatus(c: CredentialRecord, x: X509Certificate, now: number): string {
  if (c.status === 'REVOKED') return 'revoked';
  if (c.status === 'SUSPENDED') return 'suspended';
  return new Date(x.validTo).getTime() < now ? 'expired' : 'valid';
}

export function credentialInfoJson(
  c: CredentialRecord,
  o: { certificates: 'none' | 'single' | 'chain'; certInfo: boolean; authInfo: boolean; caDer: Buffer; now: number },
): Record<string, unknown> {
  const key: Record<string, unknown> = {
    status: c.status === 'ACTIVE' ? 'enabled' : 'disabled',
    algo: algoOids(c.key_alg),
    len: c.key_alg === 'RSA' ? c.key_size : c.curve === 'P-384' ? 384 : 256,
    ...(c.curve ? { curve: OIDS[c.curve] } : {}),
  };
  const out: Record<string, unknown> = {
    description: c.description,
    // DigiCert Document Trust Manager's lifecycle state (not a CSC v1 field): only ACTIVE signs
    status: c.status,
    key,
  };
  if (c.cert) {
    const der = Buffer.from(c.cert, 'base64');
    const x = new X509Certificate(der);
    const cert: Record<string, unknown> = { status: certStatus(c, x, o.now) };
    if (o.certificates !== 'none') cert.certificates = o.certificates === 'chain' ? [c.cert, o.caDer.toString('base64')] : [c.cert];
    if (o.certInfo) {
      cert.issuerDN = x.issuer.replace(/\n/g, ', ');
      cert.serialNumber = x.serialNumber.toLowerCase();
      cert.subjectDN = x.subject.replace(/\n/g, ', ');
      cert.validFrom = generalized(new Date(x.validFrom));
      cert.validTo = generalized(new Date(x.validTo));
    }
    out.cert = cert;
  }
  // every credential of the emulator is "explicit": the client collects PIN/OTP and calls authorize
  out.authMode = 'explicit';
  out.SCAL = c.scal;
  if (o.authInfo) {
    out.PIN = c.pin_digest
      ? { presence: 'true', format: c.pin_format ?? 'A', label: 'PIN', description: `The PIN of credential ${c.id}` }
      : { presence: 'false' };
    out.OTP = c.otp
      ? {
          presence: 'true',
          type: 'online',
          ID: `otp-${c.id}`,
          provider: 'signbridge CSC emulator (written to <stateDir>/otp/<credentialID>)',
          format: 'N',
          label: 'OTP',
          description: 'A 6-digit one-time password: call credentials/sendOTP, then read it',
        }
      : { presence: 'false' };
  }
  out.multisign = c.multisign;
  out.lang = 'en-US';
  return out;
}
