// The C++ core behind the C ABI: one function per supported PKCS#11 call. entry.cpp checks
// pointer arguments and dispatches here; everything returns a Status carrying its CK_RV.
#pragma once
#include "p11.h"
#include "status.h"

namespace sb::bridge {

Status initialize(CK_C_INITIALIZE_ARGS_PTR args);
Status finalize();
Status check_initialized();
Status get_info(CK_INFO& info);
Status get_slot_list(bool token_present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count);
Status get_slot_info(CK_SLOT_ID slot, CK_SLOT_INFO& info);
Status get_token_info(CK_SLOT_ID slot, CK_TOKEN_INFO& info);
Status get_mechanism_list(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count);
Status get_mechanism_info(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO& info);
Status open_session(CK_SLOT_ID slot, CK_FLAGS flags, CK_SESSION_HANDLE& out);
Status close_session(CK_SESSION_HANDLE h);
Status close_all_sessions(CK_SLOT_ID slot);
Status get_session_info(CK_SESSION_HANDLE h, CK_SESSION_INFO& info);
Status login(CK_SESSION_HANDLE h, CK_USER_TYPE user, const CK_UTF8CHAR* pin, CK_ULONG pin_len);
Status logout(CK_SESSION_HANDLE h);
Status get_attribute_value(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count);
Status find_objects_init(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count);
Status find_objects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR out, CK_ULONG max, CK_ULONG& count);
Status find_objects_final(CK_SESSION_HANDLE h);
Status sign_init(CK_SESSION_HANDLE h, const CK_MECHANISM& mech, CK_OBJECT_HANDLE key);
// The sign calls validate their own pointers: per v2.40 §5.11 any error except
// CKR_BUFFER_TOO_SMALL (and a length query) ends the operation.
Status sign(CK_SESSION_HANDLE h, const CK_BYTE* data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len);
Status sign_update(CK_SESSION_HANDLE h, const CK_BYTE* data, CK_ULONG len);
Status sign_final(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len);
// Digesting (SHA-256/384/512), done in the module. SunPKCS11 needs the digest mechanisms
// listed before it offers RSASSA-PSS (P11PSSSignature checks C_GetMechanismInfo(CKM_SHAxxx)).
// Same error rules as signing (v2.40 §5.10).
Status digest_init(CK_SESSION_HANDLE h, const CK_MECHANISM& mech);
Status digest(CK_SESSION_HANDLE h, const CK_BYTE* data, CK_ULONG len, CK_BYTE_PTR out, CK_ULONG_PTR out_len);
Status digest_update(CK_SESSION_HANDLE h, const CK_BYTE* data, CK_ULONG len);
Status digest_final(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len);

// PKCS#11 3.0 C_SessionCancel (3.0 §5.6): ends the sign, digest and find operations named
// in flags; one that is active in another thread → CKR_OPERATION_CANCEL_FAILED.
Status session_cancel(CK_SESSION_HANDLE h, CK_FLAGS flags);
// C_GenerateRandom from the OS CSPRNG (getrandom(2)); C_SeedRandom is refused (v2.40 §5.15).
Status generate_random(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG len);
Status seed_random(CK_SESSION_HANDLE h);
// C_GetObjectSize (v2.40 §5.7): an estimate from the attributes the module holds.
Status get_object_size(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ULONG& size);

}  // namespace sb::bridge
