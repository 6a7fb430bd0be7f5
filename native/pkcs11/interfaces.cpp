// PKCS#11 3.0 interfaces (3.0 §5.4 C_GetInterfaceList / C_GetInterface): "PKCS 11" 3.0, the
// default, and "PKCS 11" 2.40 (the same list C_GetFunctionList returns). Only these two new
// entry points are exported; the other 3.0 entries are reachable through the 3.0 list only, so
// the symbol table stays the v2.40 names plus the two a 3.0 loader looks up with dlsym.
#include <cstring>

#include "bridge.h"
#include "entry.h"
#include "p11.h"
#include "p11_v3.h"
#include "templates.h"

using sb::Status;
using sb::guard;
namespace bridge = sb::bridge;

#define SB_EXPORT __attribute__((visibility("default")))

extern "C" {
SB_EXPORT CK_RV C_GetInterfaceList(CK_INTERFACE_PTR pInterfacesList, CK_ULONG_PTR pulCount);
SB_EXPORT CK_RV C_GetInterface(CK_UTF8CHAR_PTR pInterfaceName, CK_VERSION_PTR pVersion,
                               CK_INTERFACE_PTR_PTR ppInterface, CK_FLAGS flags);
}

namespace {

CK_RV unsupported(const char* fn) {
  return guard(fn, [&] {
    Status s = bridge::check_initialized();
    return s.ok() ? Status(CKR_FUNCTION_NOT_SUPPORTED, "signbridge only signs, with the v2.40 C_Sign* calls; "
                                                       "the 3.0 message-based calls are not offered")
                  : s;
  });
}

// 3.0 §5.6 C_LoginUser: for CKU_SO and CKU_CONTEXT_SPECIFIC it behaves as C_Login; for CKU_USER
// the username says which of a token's users logs in. This token has exactly one user (the
// socket's owner, design.md "Login model"), so a name can select nothing else: it is ignored
// rather than required to be empty, so that callers that always pass their login name still
// work. Only a NULL name with a length is bad arguments.
CK_RV login_user(CK_SESSION_HANDLE h, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len,
                 CK_UTF8CHAR_PTR name, CK_ULONG name_len) {
  return guard("C_LoginUser", [&] {
    if ((!pin && pin_len) || (!name && name_len)) return Status(CKR_ARGUMENTS_BAD);
    return bridge::login(h, user, pin, pin_len);
  });
}

CK_RV session_cancel(CK_SESSION_HANDLE h, CK_FLAGS flags) {
  return guard("C_SessionCancel", [&] { return bridge::session_cancel(h, flags); });
}

// The 20 message-based entries (3.0 message-based encryption, signing and verification): not offered, since nothing
// that signs code uses them.
#define SB_UNSUPPORTED_MSG(name, ...) \
  CK_RV name##_unsupported(__VA_ARGS__) { return unsupported(#name); }
SB_UNSUPPORTED_MSG(C_MessageEncryptInit, CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE)
SB_UNSUPPORTED_MSG(C_EncryptMessage, CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
                   CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR)
SB_UNSUPPORTED_MSG(C_EncryptMessageBegin, CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG)
SB_UNSUPPORTED_MSG(C_EncryptMessageNext, CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG,
                   CK_BYTE_PTR, CK_ULONG_PTR, CK_FLAGS)
SB_UNSUPPORTED_MSG(C_MessageEncryptFinal, CK_SESSION_HANDLE)
SB_UNSUPPORTED_MSG(C_MessageDecryptInit, CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE)
SB_UNSUPPORTED_MSG(C_DecryptMessage, CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
                   CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR)
SB_UNSUPPORTED_MSG(C_DecryptMessageBegin, CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG)
SB_UNSUPPORTED_MSG(C_DecryptMessageNext, CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG,
                   CK_BYTE_PTR, CK_ULONG_PTR, CK_FLAGS)
SB_UNSUPPORTED_MSG(C_MessageDecryptFinal, CK_SESSION_HANDLE)
SB_UNSUPPORTED_MSG(C_MessageSignInit, CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE)
SB_UNSUPPORTED_MSG(C_SignMessage, CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
                   CK_ULONG_PTR)
SB_UNSUPPORTED_MSG(C_SignMessageBegin, CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG)
SB_UNSUPPORTED_MSG(C_SignMessageNext, CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
                   CK_ULONG_PTR)
SB_UNSUPPORTED_MSG(C_MessageSignFinal, CK_SESSION_HANDLE)
SB_UNSUPPORTED_MSG(C_MessageVerifyInit, CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE)
SB_UNSUPPORTED_MSG(C_VerifyMessage, CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
                   CK_ULONG)
SB_UNSUPPORTED_MSG(C_VerifyMessageBegin, CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG)
SB_UNSUPPORTED_MSG(C_VerifyMessageNext, CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
                   CK_ULONG)
SB_UNSUPPORTED_MSG(C_MessageVerifyFinal, CK_SESSION_HANDLE)
#undef SB_UNSUPPORTED_MSG

// The 68 v2.40 entries in pkcs11f.h order, then the 24 of 3.0 (p11_v3.h).
CK_FUNCTION_LIST_3_0 g_list_3_0 = {
    {3, 0},
#define CK_PKCS11_FUNCTION_INFO(name) name,
#include <pkcs11f.h>
#undef CK_PKCS11_FUNCTION_INFO
    C_GetInterfaceList, C_GetInterface, login_user, session_cancel,
    C_MessageEncryptInit_unsupported, C_EncryptMessage_unsupported, C_EncryptMessageBegin_unsupported,
    C_EncryptMessageNext_unsupported, C_MessageEncryptFinal_unsupported, C_MessageDecryptInit_unsupported,
    C_DecryptMessage_unsupported, C_DecryptMessageBegin_unsupported, C_DecryptMessageNext_unsupported,
    C_MessageDecryptFinal_unsupported, C_MessageSignInit_unsupported, C_SignMessage_unsupported,
    C_SignMessageBegin_unsupported, C_SignMessageNext_unsupported, C_MessageSignFinal_unsupported,
    C_MessageVerifyInit_unsupported, C_VerifyMessage_unsupported, C_VerifyMessageBegin_unsupported,
    C_VerifyMessageNext_unsupported, C_MessageVerifyFinal_unsupported,
};

CK_CHAR kName[] = "PKCS 11";

// Not CKF_INTERFACE_FORK_SAFE: a fork child must C_Initialize again (design.md "Fork").
// The first entry is the default (3.0 §5.4: C_GetInterface with a NULL name).
CK_INTERFACE g_interfaces[] = {
    {kName, &g_list_3_0, 0},
    {kName, &sb::g_function_list_v2, 0},
};

constexpr CK_ULONG kCount = sizeof g_interfaces / sizeof g_interfaces[0];

}  // namespace

extern "C" {

// Callable before C_Initialize, like C_GetFunctionList.
CK_RV C_GetInterfaceList(CK_INTERFACE_PTR pInterfacesList, CK_ULONG_PTR pulCount) {
  return guard("C_GetInterfaceList", [&] {
    if (!pulCount) return Status(CKR_ARGUMENTS_BAD);
    Status answer;
    if (!sb::two_call(kCount, pInterfacesList, pulCount, answer)) return answer;
    memcpy(pInterfacesList, g_interfaces, sizeof g_interfaces);
    return Status::Ok();
  });
}

// 3.0 §5.4: NULL name → the default interface; NULL version → the first with that name; the
// interface must have every flag asked for. No match → CKR_ARGUMENTS_BAD, the one fitting code 3.0 lists for it.
CK_RV C_GetInterface(CK_UTF8CHAR_PTR pInterfaceName, CK_VERSION_PTR pVersion, CK_INTERFACE_PTR_PTR ppInterface,
                     CK_FLAGS flags) {
  return guard("C_GetInterface", [&] {
    if (!ppInterface) return Status(CKR_ARGUMENTS_BAD);
    for (CK_INTERFACE& it : g_interfaces) {
      const auto* version = static_cast<const CK_VERSION*>(it.pFunctionList);  // both lists start with it
      if (pInterfaceName && strcmp(reinterpret_cast<const char*>(pInterfaceName),
                                   reinterpret_cast<const char*>(it.pInterfaceName)) != 0)
        continue;
      if (pVersion && (pVersion->major != version->major || pVersion->minor != version->minor)) continue;
      if ((it.flags & flags) != flags) continue;
      *ppInterface = &it;
      return Status::Ok();
    }
    sb::set_debug_from_env();  // called before C_Initialize, which otherwise reads it
    return Status(CKR_ARGUMENTS_BAD, "no such interface (offered: \"PKCS 11\" 3.0 and 2.40)");
  });
}

}  // extern "C"
