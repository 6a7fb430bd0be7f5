// The emulator's own PKI (docs/emulator.md "State directory"): a CA with a software key, the TLS
// server certificate, the mTLS client certificate (PEM and PKCS#12) and the code-signing
// certificates of the keypairs, all chained to that CA. Created on the first run, reused later.

import { spawnSync } from 'node:child_process';
import { createSecureContext } from 'node:tls';
import { createPrivateKey, generateKeyPairSync, randomBytes, sign as nodeSign, X509Certificate, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { join } from 'node:path';
import { bitString, children, decode, explicit, fromPem, implicit, oid, octetString, parseCertificate, seq, tlv, TAG, type Tlv } from '../core/der.js';
import { buildCertificate, nodeKeySigner, type BuiltCertificate, type KeyUsageName } from '../core/x509-builder.js';
import { EmulatorError } from './errors.js';

export const OPENSSL_APT_LINE = 'apt-get install -y openssl';

/** File names inside the state directory (docs/emulator.md). */
export const PKI_FILES = {
  caCert: 'ca.crt',
  caKey: 'ca.key',
  serverCert: 'server.crt',
  serverKey: 'server.key',
  clientCert: 'client.crt',
  clientKey: 'client.key',
  clientP12: 'client.p12',
  clientP12Password: 'client.p12.password',
  apiKey: 'api-key',
} as const;

export interface Pki {
  caCertPem: string;
  caCertDer: Buffer;
  serverCertPem: string;
  serverKeyPem: string;
  apiKey: string;
  clientP12Password: string;
  /** absolute paths of the files in PKI_FILES */
  paths: { [K in keyof typeof PKI_FILES]: string };
  /** A code-signing certificate (EKU codeSigning) for a keypair's public key, signed by the CA. */
  issueCodeSigning(commonName: string, spki: Buffer): Promise<Buffer>;
  /**
   * A document-signing certificate (the CSC emulator's credentials): keyUsage digitalSignature +
   * nonRepudiation, EKU emailProtection, which `openssl cms -verify` (purpose smimesign) and NSS's
   * email-signer usage (pdfsig) accept.
   */
  issueDocumentSigning(commonName: string, spki: Buffer): Promise<Buffer>;
}

const ORG = 'signbridge STM emulator';
const YEAR_MS = 365 * 24 * 3600_000;

/** Secrets: mode 0600, written to a temp name and renamed so a crash never leaves half a key. */
export function writeSecret(path: string, data: string | Buffer): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode: 0o600 });
  chmodSync(tmp, 0o600); // the umask cannot widen it, but a pre-existing tmp could have another mode
  renameSync(tmp, path);
}

function spkiOf(key: KeyObject): Buffer {
  return key.export({ type: 'spki', format: 'der' });
}

/**
 * x509-builder has no subjectAltName (RFC 5280 §4.2.1.6), and TLS clients match
 * https://127.0.0.1 only against an iPAddress SAN. So: let buildCertificate make the TBS, add the
 * SAN extension to it, and sign again with the CA key. (Asked for in the report: a
 * `subjectAltName` option in x509-builder would make this function go away.)
 */
function withSubjectAltName(built: BuiltCertificate, names: { dns: string[]; ips: Buffer[] }, caKey: KeyObject): Buffer {
  const san = seq(...names.dns.map((d) => implicit(2, Buffer.from(d, 'ascii'))), ...names.ips.map((ip) => implicit(7, ip)));
  const sanExt = seq(oid('2.5.29.17'), octetString(san));
  const fields = children(decode(built.tbs, TAG.SEQUENCE));
  const last = fields[fields.length - 1]!;
  if (last.tag !== 0xa3) throw new Error('server certificate TBS has no extensions block');
  const exts = children(decode(children(last)[0]!.raw, TAG.SEQUENCE)).map((t: Tlv) => t.raw);
  const tbs = seq(...fields.slice(0, -1).map((f) => f.raw), explicit(3, seq(...exts, sanExt)));
  const algId = children(decode(built.der, TAG.SEQUENCE))[1]!.raw;
  const der = tlv(TAG.SEQUENCE, Buffer.concat([tbs, algId, bitString(nodeSign('sha256', tbs, caKey))]));
  parseCertificate(der);
  return der;
}

function ipBytes(ip: string): Buffer | undefined {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  if (ip === '::1') return Buffer.from([...Array(15).fill(0), 1]);
  return undefined; // other IPv6 literals: not in the certificate (docs/emulator.md)
}

/** The names the server certificate must cover for `listenHost` (besides 127.0.0.1, ::1, localhost). */
export function serverNames(listenHost: string): { dns: string[]; ips: string[] } {
  const ips = new Set(['127.0.0.1', '::1']);
  const dns = new Set(['localhost']);
  if (listenHost && listenHost !== '0.0.0.0' && listenHost !== '::') {
    if (ipBytes(listenHost)) ips.add(listenHost);
    else if (!/[:]/.test(listenHost)) dns.add(listenHost);
  }
  return { dns: [...dns], ips: [...ips] };
}

interface Ca {
  key: KeyObject;
  der: Buffer;
  pem: string;
  subjectDer: Buffer;
  spki: Buffer;
}

async function createCa(dir: string): Promise<Ca> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 3072 });
  const spki = spkiOf(publicKey);
  const cert = await buildCertificate({
    subject: [
      ['CN', 'signbridge STM emulator CA'],
      ['O', ORG],
    ],
    subjectPublicKey: spki,
    notAfter: new Date(Date.now() + 10 * YEAR_MS),
    signatureAlgorithm: 'sha256WithRSAEncryption',
    sign: nodeKeySigner(privateKey, 'sha256WithRSAEncryption'),
    extensions: {
      basicConstraints: { ca: true, pathLength: 0 },
      keyUsage: ['digitalSignature', 'keyCertSign', 'cRLSign'],
      subjectKeyIdentifier: true,
      authorityKeyIdentifier: true,
    },
  });
  writeSecret(join(dir, PKI_FILES.caKey), privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
  writeFileSync(join(dir, PKI_FILES.caCert), cert.pem, { mode: 0o644 });
  return { key: privateKey, der: cert.der, pem: cert.pem, subjectDer: parseCertificate(cert.der).subjectDer, spki };
}

function loadCa(dir: string): Ca {
  const pem = readFileSync(join(dir, PKI_FILES.caCert), 'utf8');
  const der = fromPem(pem);
  const key = createPrivateKey(readFileSync(join(dir, PKI_FILES.caKey), 'utf8'));
  const parsed = parseCertificate(der);
  return { key, der, pem, subjectDer: parsed.subjectDer, spki: parsed.spkiDer };
}

async function issue(
  ca: Ca,
  subjectCn: string,
  spki: Buffer,
  eku: string,
  notAfter: Date,
  keyUsage: KeyUsageName[] = ['digitalSignature'],
): Promise<BuiltCertificate> {
  return buildCertificate({
    subject: [
      ['CN', subjectCn],
      ['O', ORG],
    ],
    subjectPublicKey: spki,
    issuer: { name: ca.subjectDer, publicKey: ca.spki },
    notAfter,
    signatureAlgorithm: 'sha256WithRSAEncryption',
    sign: nodeKeySigner(ca.key, 'sha256WithRSAEncryption'),
    extensions: {
      basicConstraints: { ca: false },
      keyUsage,
      extendedKeyUsage: [eku],
      subjectKeyIdentifier: true,
      authorityKeyIdentifier: true,
    },
  });
}

async function createServerCert(dir: string, ca: Ca, listenHost: string): Promise<void> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const names = serverNames(listenHost);
  const built = await issue(ca, 'signbridge STM emulator server', spkiOf(publicKey), 'serverAuth', new Date(Date.now() + 2 * YEAR_MS));
  const der = withSubjectAltName(built, { dns: names.dns, ips: names.ips.map((i) => ipBytes(i)!) }, ca.key);
  writeSecret(join(dir, PKI_FILES.serverKey), privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
  writeFileSync(join(dir, PKI_FILES.serverCert), new X509Certificate(der).toString(), { mode: 0o644 });
}

/** PKCS#12 through openssl (node:crypto cannot write it); the password travels in the child's environment, never argv. */
function writePkcs12(dir: string, password: string): void {
  const out = join(dir, PKI_FILES.clientP12);
  const r = spawnSync(
    'openssl',
    [
      'pkcs12', '-export',
      '-in', join(dir, PKI_FILES.clientCert),
      '-inkey', join(dir, PKI_FILES.clientKey),
      '-certfile', join(dir, PKI_FILES.caCert),
      '-name', 'signbridge STM emulator client',
      '-passout', 'env:SIGNBRIDGE_EMULATOR_P12_PASSWORD',
      '-out', `${out}.tmp`,
    ],
    { env: { ...process.env, SIGNBRIDGE_EMULATOR_P12_PASSWORD: password }, encoding: 'utf8', timeout: 30_000 },
  );
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new EmulatorError('SIGNBRIDGE_ERR_EMULATOR_TOOL', `openssl is not installed (needed once, to write ${out}): run \`${OPENSSL_APT_LINE}\` as root`);
  }
  if (r.status !== 0) {
    throw new EmulatorError('SIGNBRIDGE_ERR_EMULATOR_TOOL', `openssl pkcs12 -export failed (exit ${r.status}): ${(r.stderr ?? '').trim()}`);
  }
  chmodSync(`${out}.tmp`, 0o600);
  renameSync(`${out}.tmp`, out);
  // an independent reader must open it with the password
  createSecureContext({ pfx: readFileSync(out), passphrase: password });
}

async function createClientCert(dir: string, ca: Ca, password: string): Promise<void> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const built = await issue(ca, 'signbridge STM emulator client', spkiOf(publicKey), 'clientAuth', new Date(Date.now() + 2 * YEAR_MS));
  writeSecret(join(dir, PKI_FILES.clientKey), privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
  writeFileSync(join(dir, PKI_FILES.clientCert), built.pem, { mode: 0o644 });
  writePkcs12(dir, password);
}

// RFC 5280 §4.2.1.12 id-kp-emailProtection
const EMAIL_PROTECTION = '1.3.6.1.5.5.7.3.4';

async function issueChecked(ca: Ca, commonName: string, spki: Buffer, eku: string, keyUsage: KeyUsageName[]): Promise<Buffer> {
  const cert = await issue(ca, commonName, spki, eku, new Date(Date.now() + YEAR_MS), keyUsage);
  // check with an independent implementation before handing it out
  if (!new X509Certificate(cert.der).verify(new X509Certificate(ca.der).publicKey)) {
    throw new Error(`the certificate issued for ${commonName} does not verify against the emulator CA`);
  }
  return cert.der;
}

function readSecret(path: string): string {
  chmodSync(path, 0o600);
  return readFileSync(path, 'utf8').trim();
}

/**
 * First run (`create`): CA, server and client certificates, API key and PKCS#12 password.
 * Later runs: load them; the server certificate is re-issued when `listenHost` is not in it.
 */
export async function openPki(dir: string, listenHost: string, create: boolean): Promise<Pki> {
  const p = Object.fromEntries(Object.entries(PKI_FILES).map(([k, f]) => [k, join(dir, f)])) as Pki['paths'];
  let ca: Ca;
  if (create) {
    ca = await createCa(dir);
    writeSecret(p.apiKey, randomBytes(24).toString('base64url'));
    writeSecret(p.clientP12Password, randomBytes(18).toString('base64url'));
    await createServerCert(dir, ca, listenHost);
    await createClientCert(dir, ca, readSecret(p.clientP12Password));
  } else {
    const missing = Object.values(p).filter((f) => !existsSync(f));
    if (missing.length > 0) {
      throw new EmulatorError(
        'SIGNBRIDGE_ERR_EMULATOR_STATE',
        `the emulator state in ${dir} is incomplete (missing ${missing.join(', ')}): remove the directory to start afresh`,
      );
    }
    ca = loadCa(dir);
    const server = new X509Certificate(readFileSync(p.serverCert));
    const names = serverNames(listenHost);
    const covered = names.ips.every((ip) => server.checkIP(ip)) && names.dns.every((d) => server.checkHost(d));
    if (!covered || new Date(server.validTo).getTime() < Date.now() + 24 * 3600_000) await createServerCert(dir, ca, listenHost);
  }
  return {
    caCertPem: ca.pem,
    caCertDer: ca.der,
    serverCertPem: readFileSync(p.serverCert, 'utf8'),
    serverKeyPem: readFileSync(p.serverKey, 'utf8'),
    apiKey: readSecret(p.apiKey),
    clientP12Password: readSecret(p.clientP12Password),
    paths: p,
    issueCodeSigning: (commonName, spki) => issueChecked(ca, commonName, spki, 'codeSigning', ['digitalSignature']),
    issueDocumentSigning: (commonName, spki) => issueChecked(ca, commonName, spki, EMAIL_PROTECTION, ['digitalSignature', 'nonRepudiation']),
  };
}
