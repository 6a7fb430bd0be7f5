// The PKCS#11 v2.40 entry points that signbridge implements, and the v2.40 function list.
// Each one checks its pointer arguments and dispatches to bridge.cpp. The rest of the 68
// functions are in unsupported.cpp.
#include "entry.h"

#include "bridge.h"
#include "p11.h"

using sb::Status;
using sb::guard;
namespace bridge = sb::bridge;

static const Status kBadArgs(CKR_ARGUMENTS_BAD);

extern "C" {

CK_RV C_Initialize(CK_VOID_PTR pInitArgs) {
  return guard("C_Initialize", [&] { return bridge::initialize(static_cast<CK_C_INITIALIZE_ARGS_PTR>(pInitArgs)); });
}

CK_RV C_Finalize(CK_VOID_PTR pReserved) {
  return guard("C_Finalize", [&] { return pReserved ? kBadArgs : bridge::finalize(); });
}

CK_RV C_GetInfo(CK_INFO_PTR pInfo) {
  return guard("C_GetInfo", [&] { return pInfo ? bridge::get_info(*pInfo) : kBadArgs; });
}

CK_RV C_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount) {
  return guard("C_GetSlotList", [&] {
    return pulCount ? bridge::get_slot_list(tokenPresent != CK_FALSE, pSlotList, pulCount) : kBadArgs;
  });
}

CK_RV C_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo) {
  return guard("C_GetSlotInfo", [&] { return pInfo ? bridge::get_slot_info(slotID, *pInfo) : kBadArgs; });
}

CK_RV C_GetTokenInfo(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo) {
  return guard("C_GetTokenInfo", [&] { return pInfo ? bridge::get_token_info(slotID, *pInfo) : kBadArgs; });
}

CK_RV C_GetMechanismList(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList, CK_ULONG_PTR pulCount) {
  return guard("C_GetMechanismList", [&] {
    return pulCount ? bridge::get_mechanism_list(slotID, pMechanismList, pulCount) : kBadArgs;
  });
}

CK_RV C_GetMechanismInfo(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR pInfo) {
  return guard("C_GetMechanismInfo", [&] { return pInfo ? bridge::get_mechanism_info(slotID, type, *pInfo) : kBadArgs; });
}

CK_RV C_OpenSession(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR, CK_NOTIFY, CK_SESSION_HANDLE_PTR phSession) {
  return guard("C_OpenSession", [&] { return phSession ? bridge::open_session(slotID, flags, *phSession) : kBadArgs; });
}

CK_RV C_CloseSession(CK_SESSION_HANDLE hSession) {
  return guard("C_CloseSession", [&] { return bridge::close_session(hSession); });
}

CK_RV C_CloseAllSessions(CK_SLOT_ID slotID) {
  return guard("C_CloseAllSessions", [&] { return bridge::close_all_sessions(slotID); });
}

CK_RV C_GetSessionInfo(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo) {
  return guard("C_GetSessionInfo", [&] { return pInfo ? bridge::get_session_info(hSession, *pInfo) : kBadArgs; });
}

CK_RV C_Login(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen) {
  // The PIN goes to the daemon only for a token with CKF_LOGIN_REQUIRED (protocol.md "LOGIN").
  return guard("C_Login", [&] { return (!pPin && ulPinLen) ? kBadArgs : bridge::login(hSession, userType, pPin, ulPinLen); });
}

CK_RV C_Logout(CK_SESSION_HANDLE hSession) {
  return guard("C_Logout", [&] { return bridge::logout(hSession); });
}

CK_RV C_GetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate,
                          CK_ULONG ulCount) {
  return guard("C_GetAttributeValue", [&] {
    return (!pTemplate && ulCount) ? kBadArgs : bridge::get_attribute_value(hSession, hObject, pTemplate, ulCount);
  });
}

CK_RV C_FindObjectsInit(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) {
  return guard("C_FindObjectsInit", [&] {
    return (!pTemplate && ulCount) ? kBadArgs : bridge::find_objects_init(hSession, pTemplate, ulCount);
  });
}

CK_RV C_FindObjects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject, CK_ULONG ulMaxObjectCount,
                    CK_ULONG_PTR pulObjectCount) {
  return guard("C_FindObjects", [&] {
    if (!pulObjectCount || (!phObject && ulMaxObjectCount)) return kBadArgs;
    return bridge::find_objects(hSession, phObject, ulMaxObjectCount, *pulObjectCount);
  });
}

CK_RV C_FindObjectsFinal(CK_SESSION_HANDLE hSession) {
  return guard("C_FindObjectsFinal", [&] { return bridge::find_objects_final(hSession); });
}

CK_RV C_SignInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) {
  return guard("C_SignInit", [&] { return pMechanism ? bridge::sign_init(hSession, *pMechanism, hKey) : kBadArgs; });
}

CK_RV C_Sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
             CK_ULONG_PTR pulSignatureLen) {
  return guard("C_Sign", [&] { return bridge::sign(hSession, pData, ulDataLen, pSignature, pulSignatureLen); });
}

CK_RV C_SignUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen) {
  return guard("C_SignUpdate", [&] { return bridge::sign_update(hSession, pPart, ulPartLen); });
}

CK_RV C_SignFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) {
  return guard("C_SignFinal", [&] { return bridge::sign_final(hSession, pSignature, pulSignatureLen); });
}

CK_RV C_DigestInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism) {
  return guard("C_DigestInit", [&] { return pMechanism ? bridge::digest_init(hSession, *pMechanism) : kBadArgs; });
}

CK_RV C_Digest(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pDigest,
               CK_ULONG_PTR pulDigestLen) {
  return guard("C_Digest", [&] { return bridge::digest(hSession, pData, ulDataLen, pDigest, pulDigestLen); });
}

CK_RV C_DigestUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen) {
  return guard("C_DigestUpdate", [&] { return bridge::digest_update(hSession, pPart, ulPartLen); });
}

CK_RV C_DigestFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen) {
  return guard("C_DigestFinal", [&] { return bridge::digest_final(hSession, pDigest, pulDigestLen); });
}

CK_RV C_GetObjectSize(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ULONG_PTR pulSize) {
  return guard("C_GetObjectSize", [&] { return pulSize ? bridge::get_object_size(hSession, hObject, *pulSize) : kBadArgs; });
}

CK_RV C_SeedRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSeed, CK_ULONG ulSeedLen) {
  return guard("C_SeedRandom", [&] { return (!pSeed && ulSeedLen) ? kBadArgs : bridge::seed_random(hSession); });
}

CK_RV C_GenerateRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pRandomData, CK_ULONG ulRandomLen) {
  return guard("C_GenerateRandom", [&] {
    return (!pRandomData && ulRandomLen) ? kBadArgs : bridge::generate_random(hSession, pRandomData, ulRandomLen);
  });
}

}  // extern "C"

// All 68 v2.40 entries, in the order of pkcs11f.h (the header's own X-macro list). Also the
// "PKCS 11" 2.40 interface (interfaces.cpp).
CK_FUNCTION_LIST sb::g_function_list_v2 = {
    {2, 40},
#define CK_PKCS11_FUNCTION_INFO(name) name,
#include <pkcs11f.h>
#undef CK_PKCS11_FUNCTION_INFO
};

extern "C" {

// Stays 2.40 for callers that know only C_GetFunctionList; 3.0 is offered by C_GetInterface.
CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList) {
  if (!ppFunctionList) return CKR_ARGUMENTS_BAD;
  *ppFunctionList = &sb::g_function_list_v2;
  return CKR_OK;
}

}  // extern "C"
