// SoftHSMv2 token set-up for the demo, the tests and softhsm-config/create-token.mjs.
//
// Everything happens through PKCS#11 (graphene-pk11), never through softhsm2-util, so no PIN
// ever appears on a command line (a command line is visible to every local user in /proc).
// Keys are generated inside the token and never leave it; each key gets a self-signed
// code-signing certificate signed BY THE TOKEN KEY and stored beside it with the same CKA_ID.

import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as G from 'graphene-pk11';
import { pkcs11Binding } from '../native/pkcs11js.js';
import { bitString, decode, ecdsaRawToDer, int, nul, OID, oid, parseCertificate, readOctetString, seq, TAG } from '../core/der.js';
import { buildCertificate, type SignatureAlgorithm } from '../core/x509-builder.js';
import {
  CKC_X_509,
  CKK_EC,
  CKK_EC_EDWARDS,
  CKK_RSA,
  CKM_EC_EDWARDS_KEY_PAIR_GEN,
  CKM_EC_KEY_PAIR_GEN,
  CKM_ECDSA,
  CKM_EDDSA,
  CKM_RSA_PKCS_KEY_PAIR_GEN,
  CKM_SHA256_RSA_PKCS,
  CKO_CERTIFICATE,
  CKO_PRIVATE_KEY,
  CKO_PUBLIC_KEY,
} from '../core/pkcs11.js';

// the installed dependency or the package's prebuilt copy (src/native/pkcs11js.ts)
const { graphene } = pkcs11Binding();

export type KeySpec =
  | { type: 'rsa'; bits: 2048 | 3072 | 4096; label?: string; idHex?: string }
  | { type: 'ec'; curve: 'P-256' | 'P-384'; label?: string; idHex?: string }
  | { type: 'ed25519'; label?: string; idHex?: string };

export interface CreatedKey {
  label: string;
  idHex: string;
  type: KeySpec['type'];
  bits?: number;
  curve?: string;
  /** <stateDir>/<label>.pem — the self-signed certificate, for verifiers' -CAfile */
  certPath: string;
  certPem: string;
  certDer: Buffer;
}

export interface CreatedToken {
  stateDir: string;
  /** the file to put in SOFTHSM2_CONF for every process that loads SoftHSMv2 (the daemon too) */
  softhsmConf: string;
  library: string;
  tokenLabel: string;
  /** CK_TOKEN_INFO.serialNumber (blank padding removed) */
  tokenSerial: string;
  /** mode 0600; the user PIN, no trailing newline */
  pinFile: string;
  keys: CreatedKey[];
}

export interface CreateTokenOptions {
  stateDir: string;
  tokenLabel?: string;
  keys: KeySpec[];
  /** default: findSoftHsmLibrary() */
  library?: string;
  /** certificate subject O= (default "signbridge demo") */
  organization?: string;
}

export class SoftHsmSetupError extends Error {
  readonly code: 'SIGNBRIDGE_ERR_SOFTHSM_MISSING' | 'SIGNBRIDGE_ERR_SOFTHSM_SETUP';
  constructor(code: SoftHsmSetupError['code'], message: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.name = 'SoftHsmSetupError';
    this.code = code;
  }
}

export const SOFTHSM_APT_LINE = 'apt-get install -y softhsm2';

/** Where Debian/Ubuntu, Fedora and source builds put the module. */
export function softHsmLibraryCandidates(): string[] {
  // SoftHSM2-for-Windows' installer default (the Windows workflow's emulator keys)
  if (process.platform === 'win32') return ['C:\\SoftHSM2\\lib\\softhsm2-x64.dll'];
  const arch = process.arch === 'arm64' ? 'aarch64' : process.arch === 'x64' ? 'x86_64' : process.arch;
  return [
    '/usr/lib/softhsm/libsofthsm2.so',
    `/usr/lib/${arch}-linux-gnu/softhsm/libsofthsm2.so`,
    '/usr/lib64/pkcs11/libsofthsm2.so',
    '/usr/lib/pkcs11/libsofthsm2.so',
    '/usr/local/lib/softhsm/libsofthsm2.so',
  ];
}

export function findSoftHsmLibrary(): string {
  const tried = softHsmLibraryCandidates();
  const found = tried.find((p) => existsSync(p));
  if (!found) {
    throw new SoftHsmSetupError(
      'SIGNBRIDGE_ERR_SOFTHSM_MISSING',
      `SoftHSMv2 is not installed (tried ${tried.join(', ')}): run \`${SOFTHSM_APT_LINE}\` as root`,
    );
  }
  return found;
}

/** "rsa:3072", "ec:P-256", "ed25519" → KeySpec (the --keys syntax of create-token.mjs). */
export function parseKeySpec(s: string): KeySpec {
  const [kind, arg] = s.trim().split(':') as [string, string | undefined];
  switch (kind.toLowerCase()) {
    case 'rsa': {
      const bits = Number(arg ?? 3072);
      if (bits !== 2048 && bits !== 3072 && bits !== 4096) break;
      return { type: 'rsa', bits };
    }
    case 'ec': {
      const curve = (arg ?? 'P-256').toUpperCase().replace(/^P(\d)/, 'P-$1');
      if (curve !== 'P-256' && curve !== 'P-384') break;
      return { type: 'ec', curve };
    }
    case 'ed25519':
      if (arg === undefined) return { type: 'ed25519' };
      break;
  }
  throw new SoftHsmSetupError(
    'SIGNBRIDGE_ERR_SOFTHSM_SETUP',
    `unknown key spec "${s}": use rsa:2048, rsa:3072, rsa:4096, ec:P-256, ec:P-384 or ed25519`,
  );
}

function defaultLabel(k: KeySpec): string {
  if (k.type === 'rsa') return `rsa-${k.bits}`;
  if (k.type === 'ec') return `ec-${k.curve.replace('-', '').toLowerCase()}`;
  return 'ed25519';
}

const CURVE_OIDS: Record<'P-256' | 'P-384', string> = { 'P-256': OID.prime256v1, 'P-384': OID.secp384r1 };

const TEMPLATE_PATH = fileURLToPath(new URL('../../softhsm-config/softhsm2.conf.template', import.meta.url));

/** Writes <stateDir>/softhsm2.conf (from softhsm-config/softhsm2.conf.template) unless it exists. */
export function writeSoftHsmConf(stateDir: string): string {
  const conf = join(stateDir, 'softhsm2.conf');
  const tokenDir = join(stateDir, 'tokens');
  mkdirSync(tokenDir, { recursive: true, mode: 0o700 });
  if (!existsSync(conf)) {
    let template: string;
    try {
      template = readFileSync(TEMPLATE_PATH, 'utf8');
    } catch (e) {
      throw new SoftHsmSetupError('SIGNBRIDGE_ERR_SOFTHSM_SETUP', `cannot read ${TEMPLATE_PATH}: reinstall signbridge`, { cause: e });
    }
    writeFileSync(conf, template.replaceAll('@TOKENDIR@', tokenDir), { mode: 0o600 });
  }
  return conf;
}

/** One user PIN per state dir: reused when a second token is added to the same dir. */
function userPin(pinFile: string): string {
  if (existsSync(pinFile)) {
    chmodSync(pinFile, 0o600);
    return readFileSync(pinFile, 'utf8').trim();
  }
  const pin = randomBytes(16).toString('hex');
  writeFileSync(pinFile, pin, { mode: 0o600, flag: 'wx' });
  return pin;
}

function pad32(label: string): string {
  // C_InitToken reads exactly 32 bytes of blank-padded label (PKCS#11 v2.40 §5.6)
  if (Buffer.byteLength(label, 'utf8') > 32) {
    throw new SoftHsmSetupError('SIGNBRIDGE_ERR_SOFTHSM_SETUP', `token label "${label}" is longer than 32 bytes: choose a shorter --label`);
  }
  return label + ' '.repeat(32 - Buffer.byteLength(label, 'utf8'));
}

function findSlotByLabel(mod: G.Module, label: string): G.Slot | undefined {
  const slots = mod.getSlots(true);
  for (let i = 0; i < slots.length; i++) {
    const slot = slots.items(i);
    const token = slot.getToken();
    if ((token.flags & graphene.TokenFlag.TOKEN_INITIALIZED) !== 0 && token.label.trim() === label) return slot;
  }
  return undefined;
}

function freeSlot(mod: G.Module): G.Slot {
  const slots = mod.getSlots(true);
  for (let i = 0; i < slots.length; i++) {
    const slot = slots.items(i);
    if ((slot.getToken().flags & graphene.TokenFlag.TOKEN_INITIALIZED) === 0) return slot;
  }
  throw new SoftHsmSetupError('SIGNBRIDGE_ERR_SOFTHSM_SETUP', 'SoftHSMv2 offers no uninitialised slot: check the tokendir in SOFTHSM2_CONF');
}

/** SubjectPublicKeyInfo DER of a token public key. */
function publicKeySpki(pub: G.SessionObject, spec: KeySpec): Buffer {
  if (spec.type === 'rsa') {
    const modulus = pub.getAttribute('modulus') as Buffer;
    const exponent = pub.getAttribute('publicExponent') as Buffer;
    // RFC 8017 A.1.1 inside RFC 3279 §2.3.1
    const rsaKey = seq(int(modulus), int(exponent));
    return seq(seq(oid(OID.rsaEncryption), nul()), bitString(rsaKey));
  }
  // CKA_EC_POINT is the DER OCTET STRING of the point (PKCS#11 v2.40 §2.3.3; SoftHSM does the same for EdDSA)
  const raw = pub.getAttribute('pointEC') as Buffer;
  const point = raw[0] === TAG.OCTET_STRING ? readOctetString(decode(raw)) : raw;
  if (spec.type === 'ec') return seq(seq(oid(OID.ecPublicKey), oid(CURVE_OIDS[spec.curve])), bitString(point));
  return seq(seq(oid(OID.ed25519)), bitString(point)); // RFC 8410 §4
}

/** A key pair generated in a token (exported for the STM emulator, which adds keys to its own token). */
export interface Generated {
  spec: KeySpec;
  label: string;
  id: Buffer;
  priv: G.PrivateKey;
  spki: Buffer;
}

export function generateKeyPair(session: G.Session, spec: KeySpec, label: string, id: Buffer): Generated {
  const common = { token: true, id, label };
  const privTemplate = {
    ...common,
    class: CKO_PRIVATE_KEY,
    private: true,
    sensitive: true,
    extractable: false,
    sign: true,
    decrypt: false,
    unwrap: false,
    derive: false,
  };
  // a signing key only: SoftHSMv2 would otherwise default encrypt/wrap to true
  const pubTemplate = { ...common, class: CKO_PUBLIC_KEY, private: false, verify: true, encrypt: false, wrap: false };
  let keys: G.IKeyPair;
  if (spec.type === 'rsa') {
    keys = session.generateKeyPair(
      { name: CKM_RSA_PKCS_KEY_PAIR_GEN, params: null },
      { ...pubTemplate, keyType: CKK_RSA, modulusBits: spec.bits, publicExponent: Buffer.from([1, 0, 1]) },
      { ...privTemplate, keyType: CKK_RSA },
    );
  } else if (spec.type === 'ec') {
    keys = session.generateKeyPair(
      { name: CKM_EC_KEY_PAIR_GEN, params: null },
      { ...pubTemplate, keyType: CKK_EC, paramsEC: oid(CURVE_OIDS[spec.curve]) },
      { ...privTemplate, keyType: CKK_EC },
    );
  } else {
    // SoftHSMv2 2.6 takes the curve as the id-Ed25519 OID (RFC 8410) in CKA_EC_PARAMS
    keys = session.generateKeyPair(
      { name: CKM_EC_EDWARDS_KEY_PAIR_GEN, params: null },
      { ...pubTemplate, keyType: CKK_EC_EDWARDS, paramsEC: oid(OID.ed25519) },
      { ...privTemplate, keyType: CKK_EC_EDWARDS },
    );
  }
  return { spec, label, id, priv: keys.privateKey, spki: publicKeySpki(keys.publicKey, spec) };
}

/** Signs a TBSCertificate with the token key and returns the X.509 signatureValue. */
function tokenSigner(session: G.Session, g: Generated): { alg: SignatureAlgorithm; sign: (tbs: Buffer) => Buffer } {
  const s = g.spec;
  if (s.type === 'rsa') {
    return {
      alg: 'sha256WithRSAEncryption',
      sign: (tbs) => session.createSign({ name: CKM_SHA256_RSA_PKCS, params: null }, g.priv).once(tbs),
    };
  }
  if (s.type === 'ec') {
    // SoftHSMv2 2.6.1 has no CKM_ECDSA_SHA256/384 (docs/consumers.md "SoftHSMv2"): hash here, sign the digest with
    // CKM_ECDSA, and turn PKCS#11's raw r‖s into the DER Ecdsa-Sig-Value X.509 needs.
    const hash = s.curve === 'P-256' ? 'sha256' : 'sha384';
    return {
      alg: s.curve === 'P-256' ? 'ecdsa-with-SHA256' : 'ecdsa-with-SHA384',
      sign: (tbs) =>
        ecdsaRawToDer(session.createSign({ name: CKM_ECDSA, params: null }, g.priv).once(createHash(hash).update(tbs).digest())),
    };
  }
  return { alg: 'Ed25519', sign: (tbs) => session.createSign({ name: CKM_EDDSA, params: null }, g.priv).once(tbs) };
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Creates (initialises) a SoftHSMv2 token in <stateDir>, generates the keys in it and stores a
 * self-signed code-signing certificate for each. Several tokens may share one state dir (e.g. an
 * Ed25519 key on a token of its own — design.md: libp11 0.4.12 breaks on mixed tokens); they share
 * softhsm2.conf and the user PIN file.
 */
export async function createToken(opts: CreateTokenOptions): Promise<CreatedToken> {
  const stateDir = resolve(opts.stateDir);
  const tokenLabel = opts.tokenLabel ?? 'signbridge';
  const library = opts.library ?? findSoftHsmLibrary();
  if (!existsSync(library)) {
    throw new SoftHsmSetupError('SIGNBRIDGE_ERR_SOFTHSM_MISSING', `PKCS#11 library ${library} does not exist: run \`${SOFTHSM_APT_LINE}\` as root`);
  }
  if (opts.keys.length === 0) throw new SoftHsmSetupError('SIGNBRIDGE_ERR_SOFTHSM_SETUP', 'no keys requested: give at least one key spec');
  const labels = opts.keys.map((k) => k.label ?? defaultLabel(k));
  const dup = labels.find((l, i) => labels.indexOf(l) !== i);
  if (dup) throw new SoftHsmSetupError('SIGNBRIDGE_ERR_SOFTHSM_SETUP', `two keys have the label "${dup}": give each a distinct label`);
  const paddedLabel = pad32(tokenLabel);

  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const softhsmConf = writeSoftHsmConf(stateDir);
  const pinFile = join(stateDir, 'user-pin');
  const pin = userPin(pinFile);
  const soPin = randomBytes(16).toString('hex'); // not kept: nothing needs the SO afterwards

  // SoftHSMv2 reads SOFTHSM2_CONF at C_Initialize; restore the caller's value afterwards.
  const previousConf = process.env.SOFTHSM2_CONF;
  process.env.SOFTHSM2_CONF = softhsmConf;
  let mod: G.Module;
  try {
    mod = graphene.Module.load(library, 'SoftHSMv2');
    mod.initialize({ flags: 0x2 /* CKF_OS_LOCKING_OK */ });
  } catch (e) {
    restoreEnv(previousConf);
    throw new SoftHsmSetupError('SIGNBRIDGE_ERR_SOFTHSM_SETUP', `cannot load SoftHSMv2 from ${library}: ${describe(e)} (reinstall with \`${SOFTHSM_APT_LINE}\`)`, {
      cause: e,
    });
  }
  try {
    if (findSlotByLabel(mod, tokenLabel)) {
      throw new SoftHsmSetupError(
        'SIGNBRIDGE_ERR_SOFTHSM_SETUP',
        `a token labelled "${tokenLabel}" already exists in ${stateDir}: choose another --label or remove the state directory`,
      );
    }
    // graphene's Slot.initToken wraps C_InitToken's (void) result in removePadding() and throws
    // after a successful call, so call pkcs11js directly.
    const free = freeSlot(mod);
    free.lib.C_InitToken(free.handle, soPin, paddedLabel);
    // SoftHSMv2 moves an initialised token to a new slot id: look it up again by label
    const slot = findSlotByLabel(mod, tokenLabel);
    if (!slot) throw new SoftHsmSetupError('SIGNBRIDGE_ERR_SOFTHSM_SETUP', `token "${tokenLabel}" vanished after C_InitToken`);
    const tokenSerial = slot.getToken().serialNumber.trim();

    const so = slot.open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION);
    so.login(soPin, graphene.UserType.SO);
    so.initPin(pin);
    so.logout();
    so.close();

    const session = slot.open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION);
    session.login(pin, graphene.UserType.USER);
    const keys: CreatedKey[] = [];
    try {
      for (let i = 0; i < opts.keys.length; i++) {
        const spec = opts.keys[i]!;
        const label = labels[i]!;
        const idHex = (spec.idHex ?? (i + 1).toString(16).padStart(2, '0')).toLowerCase();
        if (!/^([0-9a-f]{2})+$/.test(idHex)) {
          throw new SoftHsmSetupError('SIGNBRIDGE_ERR_SOFTHSM_SETUP', `key id "${idHex}" is not hex bytes (e.g. 01)`);
        }
        const id = Buffer.from(idHex, 'hex');
        let g: Generated;
        try {
          g = generateKeyPair(session, spec, label, id);
        } catch (e) {
          throw new SoftHsmSetupError('SIGNBRIDGE_ERR_SOFTHSM_SETUP', `SoftHSMv2 could not generate the ${label} key pair: ${describe(e)}`, { cause: e });
        }
        const signer = tokenSigner(session, g);
        const cert = await buildCertificate({
          subject: [
            ['CN', `signbridge ${label}`],
            ['O', opts.organization ?? 'signbridge demo'],
          ],
          subjectPublicKey: g.spki,
          notAfter: new Date(Date.now() + 2 * 365 * 24 * 3600_000),
          signatureAlgorithm: signer.alg,
          sign: signer.sign,
          extensions: {
            basicConstraints: { ca: false },
            keyUsage: ['digitalSignature'],
            extendedKeyUsage: ['codeSigning'],
            subjectKeyIdentifier: true,
            authorityKeyIdentifier: true,
          },
        });
        // self-check with an independent implementation before storing anything
        const x509 = new X509Certificate(cert.der);
        if (!x509.verify(x509.publicKey)) {
          throw new SoftHsmSetupError('SIGNBRIDGE_ERR_SOFTHSM_SETUP', `the ${label} certificate signed by the token does not verify`);
        }
        const parsed = parseCertificate(cert.der);
        session.create({
          class: CKO_CERTIFICATE,
          certType: CKC_X_509,
          certCategory: 1, // token user (PKCS#11 v2.40 §4.6.2)
          token: true,
          private: false,
          id,
          label,
          subject: parsed.subjectDer,
          issuer: parsed.issuerDer,
          serial: parsed.serialDer,
          value: cert.der,
        });
        const certPath = join(stateDir, `${label}.pem`);
        writeFileSync(certPath, cert.pem);
        const key: CreatedKey = { label, idHex, type: spec.type, certPath, certPem: cert.pem, certDer: cert.der };
        if (spec.type === 'rsa') key.bits = spec.bits;
        if (spec.type === 'ec') key.curve = spec.curve;
        if (spec.type === 'ed25519') key.curve = 'Ed25519';
        keys.push(key);
      }
    } finally {
      try {
        session.logout();
      } catch {
        /* session already gone */
      }
      session.close();
    }
    return { stateDir, softhsmConf, library, tokenLabel, tokenSerial, pinFile, keys };
  } catch (e) {
    if (e instanceof SoftHsmSetupError) throw e;
    throw new SoftHsmSetupError('SIGNBRIDGE_ERR_SOFTHSM_SETUP', `SoftHSMv2 token set-up failed in ${stateDir}: ${describe(e)}`, { cause: e });
  } finally {
    try {
      mod.finalize();
    } catch {
      /* already finalised */
    }
    mod.close();
    restoreEnv(previousConf);
  }
}

function restoreEnv(previous: string | undefined): void {
  if (previous === undefined) delete process.env.SOFTHSM2_CONF;
  else process.env.SOFTHSM2_CONF = previous;
}
