/*
 * The PKCS#11 3.0 types signbridge needs that the v2.40 headers (pkcs11js) lack: interfaces
 * (CK_INTERFACE, C_GetInterfaceList / C_GetInterface) and CK_FUNCTION_LIST_3_0. Written from the
 * OASIS PKCS#11 3.0 base specification (its CK_INTERFACE and CK_FUNCTION_LIST_3_0 type definitions); the
 * member order is that of the spec's pkcs11f.h: the 68 v2.40 entries, then the 24 new ones.
 * Plain C: the module and the C test harnesses both include it after pkcs11.h.
 */
#ifndef SIGNBRIDGE_P11_V3_H
#define SIGNBRIDGE_P11_V3_H

#ifndef CKF_INTERFACE_FORK_SAFE
#define CKF_INTERFACE_FORK_SAFE 0x00000001UL
#endif
#ifndef CKF_FIND_OBJECTS
#define CKF_FIND_OBJECTS 0x00000040UL /* C_SessionCancel: the object search */
#endif
#ifndef CKR_OPERATION_CANCEL_FAILED
#define CKR_OPERATION_CANCEL_FAILED 0x00000202UL
#endif

/* Windows: 1-byte packing like every Cryptoki structure there (p11.h). */
#ifdef _WIN32
#pragma pack(push, cryptoki, 1)
#endif
typedef struct CK_INTERFACE {
  CK_CHAR *pInterfaceName;
  CK_VOID_PTR pFunctionList;
  CK_FLAGS flags;
} CK_INTERFACE;
typedef CK_INTERFACE *CK_INTERFACE_PTR;
typedef CK_INTERFACE_PTR *CK_INTERFACE_PTR_PTR;

/* The 3.0 entry points, in pkcs11f.h order. */
typedef CK_RV (*CK_C_GetInterfaceList)(CK_INTERFACE_PTR pInterfacesList, CK_ULONG_PTR pulCount);
typedef CK_RV (*CK_C_GetInterface)(CK_UTF8CHAR_PTR pInterfaceName, CK_VERSION_PTR pVersion,
                                   CK_INTERFACE_PTR_PTR ppInterface, CK_FLAGS flags);
typedef CK_RV (*CK_C_LoginUser)(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin,
                                CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pUsername, CK_ULONG ulUsernameLen);
typedef CK_RV (*CK_C_SessionCancel)(CK_SESSION_HANDLE hSession, CK_FLAGS flags);
typedef CK_RV (*CK_C_MessageEncryptInit)(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE);
typedef CK_RV (*CK_C_EncryptMessage)(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
                                     CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR);
typedef CK_RV (*CK_C_EncryptMessageBegin)(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG);
typedef CK_RV (*CK_C_EncryptMessageNext)(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
                                         CK_ULONG_PTR, CK_FLAGS);
typedef CK_RV (*CK_C_MessageEncryptFinal)(CK_SESSION_HANDLE);
typedef CK_RV (*CK_C_MessageDecryptInit)(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE);
typedef CK_RV (*CK_C_DecryptMessage)(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
                                     CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR);
typedef CK_RV (*CK_C_DecryptMessageBegin)(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG);
typedef CK_RV (*CK_C_DecryptMessageNext)(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
                                         CK_ULONG_PTR, CK_FLAGS);
typedef CK_RV (*CK_C_MessageDecryptFinal)(CK_SESSION_HANDLE);
typedef CK_RV (*CK_C_MessageSignInit)(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE);
typedef CK_RV (*CK_C_SignMessage)(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
                                  CK_ULONG_PTR);
typedef CK_RV (*CK_C_SignMessageBegin)(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG);
typedef CK_RV (*CK_C_SignMessageNext)(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
                                      CK_ULONG_PTR);
typedef CK_RV (*CK_C_MessageSignFinal)(CK_SESSION_HANDLE);
typedef CK_RV (*CK_C_MessageVerifyInit)(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE);
typedef CK_RV (*CK_C_VerifyMessage)(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
                                    CK_ULONG);
typedef CK_RV (*CK_C_VerifyMessageBegin)(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG);
typedef CK_RV (*CK_C_VerifyMessageNext)(CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
                                        CK_ULONG);
typedef CK_RV (*CK_C_MessageVerifyFinal)(CK_SESSION_HANDLE);

/* The v2.40 list's layout, then the new entries: a 3.0 list read as CK_FUNCTION_LIST is valid. */
#define SB_P11_V3_FUNCTIONS(X)                                                                  \
  X(C_GetInterfaceList) X(C_GetInterface) X(C_LoginUser) X(C_SessionCancel)                     \
  X(C_MessageEncryptInit) X(C_EncryptMessage) X(C_EncryptMessageBegin) X(C_EncryptMessageNext)  \
  X(C_MessageEncryptFinal) X(C_MessageDecryptInit) X(C_DecryptMessage) X(C_DecryptMessageBegin) \
  X(C_DecryptMessageNext) X(C_MessageDecryptFinal) X(C_MessageSignInit) X(C_SignMessage)        \
  X(C_SignMessageBegin) X(C_SignMessageNext) X(C_MessageSignFinal) X(C_MessageVerifyInit)       \
  X(C_VerifyMessage) X(C_VerifyMessageBegin) X(C_VerifyMessageNext) X(C_MessageVerifyFinal)

typedef struct CK_FUNCTION_LIST_3_0 {
  CK_VERSION version;
#define CK_PKCS11_FUNCTION_INFO(name) CK_##name name;
#include "pkcs11f.h"
#undef CK_PKCS11_FUNCTION_INFO
#define SB_P11_V3_MEMBER(name) CK_##name name;
  SB_P11_V3_FUNCTIONS(SB_P11_V3_MEMBER)
#undef SB_P11_V3_MEMBER
} CK_FUNCTION_LIST_3_0;
typedef CK_FUNCTION_LIST_3_0 *CK_FUNCTION_LIST_3_0_PTR;

#ifdef _WIN32
#pragma pack(pop, cryptoki)
#endif

#endif
