// The PKCS#11 v2.40 headers (from node_modules/pkcs11js/includes/pkcs11, design.md
// "Native binaries"), with the C_* declarations given default visibility: the module is
// built with -fvisibility=hidden and a version script that exports only these names.
#pragma once
#pragma GCC visibility push(default)
#include <pkcs11.h>
#pragma GCC visibility pop

// Newer than v2.40 (PKCS#11 3.0); design.md: defined by us where the header lacks them.
#ifndef CKK_EC_EDWARDS
#define CKK_EC_EDWARDS 0x00000040UL
#endif
#ifndef CKM_EDDSA
#define CKM_EDDSA 0x00001057UL
#endif
#ifndef CKM_ECDSA_SHA224
#define CKM_ECDSA_SHA224 0x00001043UL
#endif
#ifndef CKM_ECDSA_SHA256
#define CKM_ECDSA_SHA256 0x00001044UL
#endif
#ifndef CKM_ECDSA_SHA384
#define CKM_ECDSA_SHA384 0x00001045UL
#endif
#ifndef CKM_ECDSA_SHA512
#define CKM_ECDSA_SHA512 0x00001046UL
#endif
