import { describe, expect, it } from 'vitest';
import { X509Certificate, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildCertificate, keyIdentifier, nodeKeySigner, signatureAlgorithmFor, type SignatureAlgorithm } from '../../src/core/x509-builder.js';
import { parseCertificate } from '../../src/core/der.js';

function keyPair(kind: string): { privateKey: KeyObject; spki: Buffer } {
  const kp =
    kind === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : kind === 'ed25519'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('ec', { namedCurve: kind });
  return { privateKey: kp.privateKey, spki: kp.publicKey.export({ type: 'spki', format: 'der' }) };
}

function opensslText(pem: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'sb-x509-'));
  try {
    writeFileSync(join(dir, 'c.pem'), pem);
    return execFileSync('openssl', ['x509', '-in', join(dir, 'c.pem'), '-noout', '-text'], { encoding: 'utf8' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const cases: Array<[string, SignatureAlgorithm, RegExp]> = [
  ['rsa', 'sha256WithRSAEncryption', /Signature Algorithm: sha256WithRSAEncryption/],
  ['P-256', 'ecdsa-with-SHA256', /Signature Algorithm: ecdsa-with-SHA256/],
  ['P-384', 'ecdsa-with-SHA384', /Signature Algorithm: ecdsa-with-SHA384/],
  ['ed25519', 'Ed25519', /Signature Algorithm: ED25519/],
];

describe('buildCertificate (self-signed code-signing certificates)', () => {
  for (const [kind, alg, algLine] of cases) {
    it(`${kind}: X509Certificate parses it, verify(publicKey) passes, openssl shows the extensions`, async () => {
      const { privateKey, spki } = keyPair(kind);
      expect(signatureAlgorithmFor(spki)).toBe(alg);
      const cert = await buildCertificate({
        subject: [['CN', `signbridge ${kind}`], ['O', 'signbridge tests'], ['C', 'DE']],
        subjectPublicKey: spki,
        sign: nodeKeySigner(privateKey, alg),
        extensions: {
          basicConstraints: { ca: false },
          keyUsage: ['digitalSignature'],
          extendedKeyUsage: ['codeSigning'],
          subjectKeyIdentifier: true,
          authorityKeyIdentifier: true,
        },
      });
      const x = new X509Certificate(cert.der);
      expect(x.verify(x.publicKey)).toBe(true);
      expect(x.subject).toBe(`CN=signbridge ${kind}\nO=signbridge tests\nC=DE`);
      expect(x.keyUsage).toEqual(['1.3.6.1.5.5.7.3.3']); // node reports the EKU OIDs here
      expect(x.ca).toBe(false);
      const text = opensslText(cert.pem);
      expect(text).toMatch(/Version: 3 \(0x2\)/);
      expect(text).toMatch(algLine);
      expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
      expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
      expect(text).toMatch(/X509v3 Extended Key Usage:\s+Code Signing\n/);
      const ski = keyIdentifier(spki).toString('hex').toUpperCase().match(/../g)!.join(':');
      expect(text).toContain(`X509v3 Subject Key Identifier: \n                ${ski}`);
      expect(text).toMatch(new RegExp(`X509v3 Authority Key Identifier: \\n\\s+(keyid:)?${ski}`));
      // the signature verifies independently: openssl checks the self-signature too
      const dir = mkdtempSync(join(tmpdir(), 'sb-x509-'));
      try {
        writeFileSync(join(dir, 'c.pem'), cert.pem);
        const out = execFileSync('openssl', ['verify', '-x509_strict', '-purpose', 'any', '-CAfile', join(dir, 'c.pem'), join(dir, 'c.pem')], {
          encoding: 'utf8',
        });
        expect(out.trim()).toBe(`${join(dir, 'c.pem')}: OK`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('a certificate signed with the wrong key does not verify (the check can fail)', async () => {
    const a = keyPair('P-256');
    const b = keyPair('P-256');
    const cert = await buildCertificate({ subject: { CN: 'x' }, subjectPublicKey: a.spki, sign: nodeKeySigner(b.privateKey, 'ecdsa-with-SHA256') });
    const x = new X509Certificate(cert.der);
    expect(x.verify(x.publicKey)).toBe(false);
  });
});

describe('buildCertificate (issued by a CA)', () => {
  it('builds a chain that openssl verify accepts for code signing', async () => {
    const ca = keyPair('P-384');
    const leaf = keyPair('rsa');
    const caName: Array<[string, string]> = [['CN', 'signbridge test CA'], ['O', 'signbridge']];
    const caCert = await buildCertificate({
      subject: caName,
      subjectPublicKey: ca.spki,
      sign: nodeKeySigner(ca.privateKey, 'ecdsa-with-SHA384'),
      extensions: { basicConstraints: { ca: true, pathLength: 0 }, keyUsage: ['keyCertSign', 'cRLSign'], subjectKeyIdentifier: true },
    });
    const serial = 0x1234567890abcdefn;
    const notBefore = new Date(Date.now() - 60_000);
    const notAfter = new Date(Date.now() + 86_400_000);
    const leafCert = await buildCertificate({
      subject: { CN: 'leaf' },
      subjectPublicKey: leaf.spki,
      issuer: { name: caName, publicKey: ca.spki },
      serial,
      notBefore,
      notAfter,
      sign: nodeKeySigner(ca.privateKey, 'ecdsa-with-SHA384'),
      extensions: {
        keyUsage: ['digitalSignature'],
        extendedKeyUsage: ['codeSigning'],
        subjectKeyIdentifier: true,
        authorityKeyIdentifier: true,
      },
    });
    const x = new X509Certificate(leafCert.der);
    const xca = new X509Certificate(caCert.der);
    expect(xca.ca).toBe(true);
    expect(x.checkIssued(xca)).toBe(true);
    expect(x.verify(xca.publicKey)).toBe(true);
    expect(x.verify(x.publicKey)).toBe(false);
    expect(x.issuer).toBe('CN=signbridge test CA\nO=signbridge');
    expect(x.serialNumber.toUpperCase()).toBe('1234567890ABCDEF');
    const p = parseCertificate(leafCert.der);
    expect(p.issuerDer.equals(parseCertificate(caCert.der).subjectDer)).toBe(true);
    expect(p.notBefore.getTime()).toBe(Math.floor(notBefore.getTime() / 1000) * 1000);
    expect(p.notAfter.getTime()).toBe(new Date(x.validTo).getTime());
    const caText = opensslText(caCert.pem);
    expect(caText).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(caText).toMatch(/X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    const leafText = opensslText(leafCert.pem);
    const caSki = keyIdentifier(ca.spki).toString('hex').toUpperCase().match(/../g)!.join(':');
    expect(leafText).toContain(caSki);

    const dir = mkdtempSync(join(tmpdir(), 'sb-x509-'));
    try {
      writeFileSync(join(dir, 'ca.pem'), caCert.pem);
      writeFileSync(join(dir, 'leaf.pem'), leafCert.pem);
      const out = execFileSync('openssl', ['verify', '-x509_strict', '-purpose', 'any', '-CAfile', join(dir, 'ca.pem'), join(dir, 'leaf.pem')], {
        encoding: 'utf8',
      });
      expect(out).toContain(': OK');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses impossible requests with a clear error', async () => {
    const a = keyPair('P-256');
    await expect(
      buildCertificate({ subject: { XX: 'y' }, subjectPublicKey: a.spki, sign: nodeKeySigner(a.privateKey, 'ecdsa-with-SHA256') }),
    ).rejects.toThrow(/unknown name attribute "XX"/);
    await expect(
      buildCertificate({
        subject: { CN: 'y' },
        subjectPublicKey: a.spki,
        notBefore: new Date(2030, 1, 1),
        notAfter: new Date(2029, 1, 1),
        sign: nodeKeySigner(a.privateKey, 'ecdsa-with-SHA256'),
      }),
    ).rejects.toThrow(/notAfter/);
  });
});
