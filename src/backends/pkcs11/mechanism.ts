// A signature's parameters checked against the key (protocol.md "SIGN" errors) before the token
// sees them, and the pkcs11js mechanism built from them.
import type * as P from 'pkcs11js';
import { sbError } from '../../core/errors.js';
import { describeKey, type KeyRecord } from '../../core/keys.js';
import {
  CKG_MGF1_SHA1, CKG_MGF1_SHA224, CKG_MGF1_SHA256, CKG_MGF1_SHA384, CKG_MGF1_SHA512, CKM_ECDSA, CKM_EDDSA,
  CKM_RSA_PKCS, CKM_RSA_PKCS_PSS, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512, CKM_SHA_1, ckmName,
} from '../../core/pkcs11.js';
import type { SignParams } from '../types.js';
import { pkcs11Binding } from '../../native/pkcs11js.js';

const HASH_LEN = new Map<number, number>([
  [CKM_SHA_1, 20], [CKM_SHA224, 28], [CKM_SHA256, 32], [CKM_SHA384, 48], [CKM_SHA512, 64],
]);
const MGFS = new Set([CKG_MGF1_SHA1, CKG_MGF1_SHA224, CKG_MGF1_SHA256, CKG_MGF1_SHA384, CKG_MGF1_SHA512]);

/** The pkcs11js mechanism for `params` on `key`; `primitives` are what the key may use on this token. */
export function mechanismFor(key: KeyRecord, params: SignParams, primitives: ReadonlySet<number>): P.Mechanism {
  const { mechanism, hashAlg, data } = params;
  if (!primitives.has(mechanism)) {
    throw sbError('SIGNBRIDGE_ERR_MECHANISM', { mechanism: ckmName(mechanism), key: `${key.label} (${describeKey(key)})` });
  }
  const modBytes = Math.ceil(key.bits / 8);
  switch (mechanism) {
    case CKM_RSA_PKCS:
      // RFC 8017 §9.2: at least 11 bytes of padding.
      if (data.length === 0 || data.length > modBytes - 11)
        throw sbError('SIGNBRIDGE_ERR_DATA_LEN', { detail: `RSA_PKCS input of ${data.length} bytes for a ${key.bits}-bit key (1..${modBytes - 11})` });
      return { mechanism };
    case CKM_RSA_PKCS_PSS: {
      const hLen = HASH_LEN.get(hashAlg);
      if (hLen === undefined) throw sbError('SIGNBRIDGE_ERR_MECHANISM_PARAM', { detail: `PSS hash ${ckmName(hashAlg)} is not SHA-1/224/256/384/512` });
      if (!MGFS.has(params.mgf)) throw sbError('SIGNBRIDGE_ERR_MECHANISM_PARAM', { detail: `PSS MGF 0x${params.mgf.toString(16)} is not a CKG_MGF1_*` });
      // RFC 8017 §9.1.1: emLen >= hLen + sLen + 2
      const emLen = Math.ceil((key.bits - 1) / 8);
      if (params.saltLen > emLen - hLen - 2)
        throw sbError('SIGNBRIDGE_ERR_MECHANISM_PARAM', { detail: `PSS salt length ${params.saltLen} exceeds ${emLen - hLen - 2} for this key and hash` });
      if (data.length !== hLen) throw sbError('SIGNBRIDGE_ERR_DATA_LEN', { detail: `PSS digest of ${data.length} bytes, ${ckmName(hashAlg)} has ${hLen}` });
      const parameter: P.RsaPSS = { hashAlg, mgf: params.mgf, saltLen: params.saltLen, type: pkcs11Binding().pkcs11js.CK_PARAMS_RSA_PSS };
      return { mechanism, parameter };
    }
    case CKM_ECDSA:
      if (data.length === 0 || data.length > 64) throw sbError('SIGNBRIDGE_ERR_DATA_LEN', { detail: `ECDSA digest of ${data.length} bytes (1..64)` });
      return { mechanism };
    case CKM_EDDSA:
      return { mechanism };
    default:
      throw sbError('SIGNBRIDGE_ERR_MECHANISM', { mechanism: ckmName(mechanism), key: key.label });
  }
}
