// The PKCS#11 v2.40 headers (from node_modules/pkcs11js/includes/pkcs11, design.md
// "Native binaries"), with the C_* declarations given default visibility: the module is
// built with -fvisibility=hidden and a version script that exports only these names.
// On Windows, Cryptoki structures are packed to 1 byte (pkcs11.h's own packing note; every
// Windows PKCS#11 library and caller agrees on it) and CK_ULONG is 32 bits (LLP64); the .def
// file (exports.def) does what the version script does.
#pragma once
#ifdef _WIN32
#pragma pack(push, cryptoki, 1)
// pkcs11.h marks its function-pointer typedefs __declspec(dllimport), which GCC ignores there.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wattributes"
#endif
#pragma GCC visibility push(default)
#include <pkcs11.h>
#pragma GCC visibility pop
#ifdef _WIN32
#pragma GCC diagnostic pop
#endif

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

#ifdef _WIN32
#pragma pack(pop, cryptoki)
#endif
