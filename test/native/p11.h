/*
 * The PKCS#11 v2.40 headers (from the pkcs11js package, via -I) with the six platform macros they
 * ask their includer to define (pkcs11.h's preamble), for the C test and bench programs.
 * CKM_EDDSA / CKK_EC_EDWARDS are PKCS#11 3.0 and missing from those headers.
 */
#ifndef SIGNBRIDGE_TEST_P11_H
#define SIGNBRIDGE_TEST_P11_H

#define CK_PTR *
#define CK_DECLARE_FUNCTION(returnType, name) returnType name
#define CK_DECLARE_FUNCTION_POINTER(returnType, name) returnType(*name)
#define CK_CALLBACK_FUNCTION(returnType, name) returnType(*name)
#ifndef NULL_PTR
#define NULL_PTR 0
#endif
#include "pkcs11.h"

#ifndef CKM_EDDSA
#define CKM_EDDSA 0x1057UL
#endif
#ifndef CKK_EC_EDWARDS
#define CKK_EC_EDWARDS 0x40UL
#endif

#endif
