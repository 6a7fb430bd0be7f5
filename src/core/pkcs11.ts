// PKCS#11 v2.40 constants signbridge uses (values from node_modules/pkcs11js/includes/pkcs11/pkcs11t.h),
// plus the few newer ones the 2.40 header lacks (design.md "Native binaries").
import * as self from './pkcs11.js';

// --- CK_RV ---
export const CKR_OK = 0x0;
export const CKR_HOST_MEMORY = 0x2;
export const CKR_GENERAL_ERROR = 0x5;
export const CKR_FUNCTION_FAILED = 0x6;
export const CKR_ARGUMENTS_BAD = 0x7;
export const CKR_ATTRIBUTE_TYPE_INVALID = 0x12;
export const CKR_DATA_INVALID = 0x20;
export const CKR_DATA_LEN_RANGE = 0x21;
export const CKR_DEVICE_ERROR = 0x30;
export const CKR_DEVICE_MEMORY = 0x31;
export const CKR_DEVICE_REMOVED = 0x32;
export const CKR_FUNCTION_CANCELED = 0x50;
export const CKR_FUNCTION_NOT_SUPPORTED = 0x54;
export const CKR_KEY_HANDLE_INVALID = 0x60;
export const CKR_KEY_SIZE_RANGE = 0x62;
export const CKR_KEY_TYPE_INCONSISTENT = 0x63;
export const CKR_KEY_FUNCTION_NOT_PERMITTED = 0x68;
export const CKR_MECHANISM_INVALID = 0x70;
export const CKR_MECHANISM_PARAM_INVALID = 0x71;
export const CKR_OBJECT_HANDLE_INVALID = 0x82;
export const CKR_OPERATION_ACTIVE = 0x90;
export const CKR_OPERATION_NOT_INITIALIZED = 0x91;
export const CKR_PIN_INCORRECT = 0xa0;
export const CKR_PIN_INVALID = 0xa1;
export const CKR_PIN_LEN_RANGE = 0xa2;
export const CKR_PIN_EXPIRED = 0xa3;
export const CKR_PIN_LOCKED = 0xa4;
export const CKR_SESSION_CLOSED = 0xb0;
export const CKR_SESSION_COUNT = 0xb1;
export const CKR_SESSION_HANDLE_INVALID = 0xb3;
export const CKR_SLOT_ID_INVALID = 0x3;
export const CKR_TOKEN_NOT_PRESENT = 0xe0;
export const CKR_TOKEN_NOT_RECOGNIZED = 0xe1;
export const CKR_USER_ALREADY_LOGGED_IN = 0x100;
export const CKR_USER_NOT_LOGGED_IN = 0x101;
export const CKR_USER_PIN_NOT_INITIALIZED = 0x102;
export const CKR_BUFFER_TOO_SMALL = 0x150;
export const CKR_FUNCTION_REJECTED = 0x200;
export const CKR_CRYPTOKI_NOT_INITIALIZED = 0x190;
export const CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191;

// --- CKO_ (object classes) ---
export const CKO_DATA = 0x0;
export const CKO_CERTIFICATE = 0x1;
export const CKO_PUBLIC_KEY = 0x2;
export const CKO_PRIVATE_KEY = 0x3;

// --- CKK_ (key types) ---
export const CKK_RSA = 0x0;
export const CKK_EC = 0x3;
export const CKK_EC_EDWARDS = 0x40; // PKCS#11 3.0; not in the 2.40 header

// --- CKC_ (certificate types) ---
export const CKC_X_509 = 0x0;

// --- CKA_ (attributes) ---
export const CKA_CLASS = 0x0;
export const CKA_TOKEN = 0x1;
export const CKA_PRIVATE = 0x2;
export const CKA_LABEL = 0x3;
export const CKA_VALUE = 0x11;
export const CKA_CERTIFICATE_TYPE = 0x80;
export const CKA_ISSUER = 0x81;
export const CKA_SERIAL_NUMBER = 0x82;
export const CKA_TRUSTED = 0x86;
export const CKA_CERTIFICATE_CATEGORY = 0x87;
export const CKA_JAVA_MIDP_SECURITY_DOMAIN = 0x88;
export const CKA_CHECK_VALUE = 0x90;
export const CKA_KEY_TYPE = 0x100;
export const CKA_SUBJECT = 0x101;
export const CKA_ID = 0x102;
export const CKA_SENSITIVE = 0x103;
export const CKA_ENCRYPT = 0x104;
export const CKA_DECRYPT = 0x105;
export const CKA_WRAP = 0x106;
export const CKA_UNWRAP = 0x107;
export const CKA_SIGN = 0x108;
export const CKA_SIGN_RECOVER = 0x109;
export const CKA_VERIFY = 0x10a;
export const CKA_VERIFY_RECOVER = 0x10b;
export const CKA_DERIVE = 0x10c;
export const CKA_START_DATE = 0x110;
export const CKA_END_DATE = 0x111;
export const CKA_MODULUS = 0x120;
export const CKA_MODULUS_BITS = 0x121;
export const CKA_PUBLIC_EXPONENT = 0x122;
export const CKA_PUBLIC_KEY_INFO = 0x129;
export const CKA_EXTRACTABLE = 0x162;
export const CKA_LOCAL = 0x163;
export const CKA_NEVER_EXTRACTABLE = 0x164;
export const CKA_ALWAYS_SENSITIVE = 0x165;
export const CKA_KEY_GEN_MECHANISM = 0x166;
export const CKA_MODIFIABLE = 0x170;
export const CKA_EC_PARAMS = 0x180;
export const CKA_EC_POINT = 0x181;
export const CKA_ALWAYS_AUTHENTICATE = 0x202;
export const CKA_WRAP_WITH_TRUSTED = 0x210;
export const CKA_NAME_HASH_ALGORITHM = 0x8c;
export const CKA_ALLOWED_MECHANISMS = 0x40000600;

// --- CKM_ (mechanisms) ---
export const CKM_RSA_PKCS_KEY_PAIR_GEN = 0x0;
export const CKM_RSA_PKCS = 0x1;
export const CKM_RSA_X_509 = 0x3;
export const CKM_RSA_PKCS_PSS = 0xd;
export const CKM_SHA1_RSA_PKCS = 0x6;
export const CKM_SHA1_RSA_PKCS_PSS = 0xe;
export const CKM_SHA256_RSA_PKCS = 0x40;
export const CKM_SHA384_RSA_PKCS = 0x41;
export const CKM_SHA512_RSA_PKCS = 0x42;
export const CKM_SHA256_RSA_PKCS_PSS = 0x43;
export const CKM_SHA384_RSA_PKCS_PSS = 0x44;
export const CKM_SHA512_RSA_PKCS_PSS = 0x45;
export const CKM_SHA224_RSA_PKCS = 0x46;
export const CKM_SHA224_RSA_PKCS_PSS = 0x47;
export const CKM_SHA_1 = 0x220;
export const CKM_SHA256 = 0x250;
export const CKM_SHA224 = 0x255;
export const CKM_SHA384 = 0x260;
export const CKM_SHA512 = 0x270;
export const CKM_EC_KEY_PAIR_GEN = 0x1040;
export const CKM_ECDSA = 0x1041;
export const CKM_ECDSA_SHA1 = 0x1042;
export const CKM_ECDSA_SHA224 = 0x1043;
export const CKM_ECDSA_SHA256 = 0x1044;
export const CKM_ECDSA_SHA384 = 0x1045;
export const CKM_ECDSA_SHA512 = 0x1046;
export const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055; // PKCS#11 3.0
export const CKM_EDDSA = 0x1057; // PKCS#11 3.0; not in the 2.40 header

// --- CKG_ (MGF) ---
export const CKG_MGF1_SHA1 = 0x1;
export const CKG_MGF1_SHA256 = 0x2;
export const CKG_MGF1_SHA384 = 0x3;
export const CKG_MGF1_SHA512 = 0x4;
export const CKG_MGF1_SHA224 = 0x5;

// --- CKF_ ---
// CK_MECHANISM_INFO.flags
export const CKF_HW = 0x1;
export const CKF_SIGN = 0x800;
export const CKF_VERIFY = 0x2000;
export const CKF_EC_F_P = 0x100000;
export const CKF_EC_NAMEDCURVE = 0x800000;
export const CKF_EC_UNCOMPRESS = 0x1000000;
// CK_TOKEN_INFO.flags
export const CKF_RNG = 0x1;
export const CKF_WRITE_PROTECTED = 0x2;
export const CKF_LOGIN_REQUIRED = 0x4;
export const CKF_USER_PIN_INITIALIZED = 0x8;
export const CKF_TOKEN_INITIALIZED = 0x400;

// CKA_CERTIFICATE_CATEGORY values
export const CK_CERTIFICATE_CATEGORY_UNSPECIFIED = 0;
export const CK_CERTIFICATE_CATEGORY_TOKEN_USER = 1;
export const CK_CERTIFICATE_CATEGORY_AUTHORITY = 2;

function namesOf(prefix: string, ns: Record<string, unknown>): Map<number, string> {
  const m = new Map<number, string>();
  for (const [k, v] of Object.entries(ns)) {
    if (k.startsWith(prefix) && typeof v === 'number' && !m.has(v)) m.set(v, k);
  }
  return m;
}

// Built lazily from this module's own exports so a name can never drift from its value.
let ckrNames: Map<number, string> | undefined;
let ckmNames: Map<number, string> | undefined;
let ckaNames: Map<number, string> | undefined;

function hex(v: number): string {
  return '0x' + v.toString(16);
}

/** "CKR_PIN_INCORRECT" for 0xa0; "CKR_0x..." for an unknown value. For logs. */
export function ckrName(rv: number): string {
  ckrNames ??= namesOf('CKR_', self as unknown as Record<string, unknown>);
  return ckrNames.get(rv) ?? `CKR_${hex(rv)}`;
}

export function ckmName(m: number | bigint): string {
  ckmNames ??= namesOf('CKM_', self as unknown as Record<string, unknown>);
  const n = Number(m);
  return ckmNames.get(n) ?? `CKM_${hex(n)}`;
}

export function ckaName(a: number | bigint): string {
  ckaNames ??= namesOf('CKA_', self as unknown as Record<string, unknown>);
  const n = Number(a);
  return ckaNames.get(n) ?? `CKA_${hex(n)}`;
}
