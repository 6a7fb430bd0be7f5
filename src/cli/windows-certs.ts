// The keys `signbridge windows certsync` links: each private key's CNG key name (CKA_LABEL, else
// the hex CKA_ID — the names the KSP's OpenKey accepts, native/ksp/ksp_core.cpp) and the DER of
// the certificate with the same CKA_ID.
import { CKA_CLASS, CKA_ID, CKA_KEY_TYPE, CKA_LABEL, CKA_VALUE, CKK_EC, CKK_RSA, CKO_CERTIFICATE, CKO_PRIVATE_KEY } from '../core/pkcs11.js';
import { attr, type P11Slot } from '../core/objects.js';

export interface KeyCertificate {
  name: string;
  der: Buffer | undefined;
  /** RSA or EC: a key the KSP offers (it has no CNG algorithm for EdDSA) */
  cng: boolean;
}

function ulong(b: Buffer | undefined): number | undefined {
  return b && b.length === 8 ? Number(b.readBigUInt64LE(0)) : undefined;
}

export function certificatesOf(slots: P11Slot[]): KeyCertificate[] {
  const out: KeyCertificate[] = [];
  for (const s of slots) {
    for (const o of s.objects) {
      if (ulong(attr(o, CKA_CLASS)) !== CKO_PRIVATE_KEY) continue;
      const id = attr(o, CKA_ID) ?? Buffer.alloc(0);
      const name = (attr(o, CKA_LABEL) ?? Buffer.alloc(0)).toString('utf8') || id.toString('hex');
      if (!name) continue;
      const cert = s.objects.find((c) => ulong(attr(c, CKA_CLASS)) === CKO_CERTIFICATE && (attr(c, CKA_ID) ?? Buffer.alloc(0)).equals(id));
      const kt = ulong(attr(o, CKA_KEY_TYPE));
      out.push({ name, der: cert && attr(cert, CKA_VALUE), cng: kt === CKK_RSA || kt === CKK_EC });
    }
  }
  return out;
}
