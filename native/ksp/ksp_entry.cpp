// The KSP's C boundary (as the module's entry.cpp): each entry of the function table is one
// guard() call. guard catches every exception (std::bad_alloc → NTE_NO_MEMORY, anything else
// → NTE_INTERNAL_ERROR) so nothing unwinds into the host, and writes one log line per failure.
// Entries this KSP does not implement answer NTE_NOT_SUPPORTED: the keys are the daemon's to
// manage (design.md "What a bridge never does").
#include <new>

#include "ksp_log.h"
#include "ksp_ops.h"
#include "ksp_table.h"

namespace {

using sb::ksp::Failure;

template <class Fn>
SECURITY_STATUS guard(const char* entry, Fn&& fn) noexcept {
  try {
    Failure f = fn();
    // The end of an enumeration is the answer, not a failure.
    if (f.status != ERROR_SUCCESS && f.status != NTE_NO_MORE_ITEMS) sb::ksp::log_failure(entry, f.status, f.message);
    return f.status;
  } catch (const std::bad_alloc&) {
    sb::ksp::log_failure(entry, NTE_NO_MEMORY, "out of memory");
    return NTE_NO_MEMORY;
  } catch (const std::exception& e) {
    sb::ksp::log_failure(entry, NTE_INTERNAL_ERROR, e.what());
    return NTE_INTERNAL_ERROR;
  } catch (...) {
    sb::ksp::log_failure(entry, NTE_INTERNAL_ERROR, "unexpected exception");
    return NTE_INTERNAL_ERROR;
  }
}

SECURITY_STATUS unsupported(const char* entry) noexcept {
  sb::ksp::log_failure(entry, NTE_NOT_SUPPORTED,
                       "signbridge signs with keys the daemon holds; it does not create, change, import, export, "
                       "encrypt with or derive keys");
  return NTE_NOT_SUPPORTED;
}

SECURITY_STATUS WINAPI OpenProvider(NCRYPT_PROV_HANDLE* ph, LPCWSTR name, DWORD flags) {
  return guard("OpenProvider", [&] { return sb::ksp::open_provider(ph, name, flags); });
}
SECURITY_STATUS WINAPI OpenKey(NCRYPT_PROV_HANDLE hp, NCRYPT_KEY_HANDLE* phk, LPCWSTR name, DWORD spec, DWORD flags) {
  return guard("OpenKey", [&] { return sb::ksp::open_key(hp, phk, name, spec, flags); });
}
SECURITY_STATUS WINAPI GetProviderProperty(NCRYPT_PROV_HANDLE hp, LPCWSTR prop, PBYTE out, DWORD cb, DWORD* pcb,
                                           DWORD flags) {
  return guard("GetProviderProperty", [&] { return sb::ksp::get_provider_property(hp, prop, out, cb, pcb, flags); });
}
SECURITY_STATUS WINAPI GetKeyProperty(NCRYPT_PROV_HANDLE hp, NCRYPT_KEY_HANDLE hk, LPCWSTR prop, PBYTE out, DWORD cb,
                                      DWORD* pcb, DWORD flags) {
  return guard("GetKeyProperty", [&] { return sb::ksp::get_key_property(hp, hk, prop, out, cb, pcb, flags); });
}
SECURITY_STATUS WINAPI FreeProvider(NCRYPT_PROV_HANDLE hp) {
  return guard("FreeProvider", [&] { return sb::ksp::free_provider(hp); });
}
SECURITY_STATUS WINAPI FreeKey(NCRYPT_PROV_HANDLE hp, NCRYPT_KEY_HANDLE hk) {
  return guard("FreeKey", [&] { return sb::ksp::free_key(hp, hk); });
}
SECURITY_STATUS WINAPI FreeBuffer(PVOID p) {
  return guard("FreeBuffer", [&] { return sb::ksp::free_buffer_entry(p); });
}
SECURITY_STATUS WINAPI IsAlgSupported(NCRYPT_PROV_HANDLE hp, LPCWSTR alg, DWORD flags) {
  return guard("IsAlgSupported", [&] { return sb::ksp::is_alg_supported(hp, alg, flags); });
}
SECURITY_STATUS WINAPI EnumKeys(NCRYPT_PROV_HANDLE hp, LPCWSTR scope, NCryptKeyName** out, PVOID* state, DWORD flags) {
  return guard("EnumKeys", [&] { return sb::ksp::enum_keys(hp, scope, out, state, flags); });
}
SECURITY_STATUS WINAPI SignHash(NCRYPT_PROV_HANDLE hp, NCRYPT_KEY_HANDLE hk, VOID* padding, PBYTE hash, DWORD cb_hash,
                                PBYTE sig, DWORD cb_sig, DWORD* pcb, DWORD flags) {
  return guard("SignHash", [&] { return sb::ksp::sign_hash(hp, hk, padding, hash, cb_hash, sig, cb_sig, pcb, flags); });
}

// ---- NTE_NOT_SUPPORTED ----
SECURITY_STATUS WINAPI CreatePersistedKey(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE*, LPCWSTR, LPCWSTR, DWORD, DWORD) {
  return unsupported("CreatePersistedKey");
}
SECURITY_STATUS WINAPI SetProviderProperty(NCRYPT_PROV_HANDLE, LPCWSTR, PBYTE, DWORD, DWORD) {
  return unsupported("SetProviderProperty");
}
SECURITY_STATUS WINAPI SetKeyProperty(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE, LPCWSTR, PBYTE, DWORD, DWORD) {
  return unsupported("SetKeyProperty");
}
SECURITY_STATUS WINAPI FinalizeKey(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE, DWORD) { return unsupported("FinalizeKey"); }
SECURITY_STATUS WINAPI DeleteKey(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE, DWORD) { return unsupported("DeleteKey"); }
SECURITY_STATUS WINAPI Encrypt(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE, PBYTE, DWORD, VOID*, PBYTE, DWORD, DWORD*, DWORD) {
  return unsupported("Encrypt");
}
SECURITY_STATUS WINAPI Decrypt(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE, PBYTE, DWORD, VOID*, PBYTE, DWORD, DWORD*, DWORD) {
  return unsupported("Decrypt");
}
SECURITY_STATUS WINAPI EnumAlgorithms(NCRYPT_PROV_HANDLE, DWORD, DWORD*, NCryptAlgorithmName**, DWORD) {
  return unsupported("EnumAlgorithms");
}
SECURITY_STATUS WINAPI ImportKey(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE, LPCWSTR, NCryptBufferDesc*, NCRYPT_KEY_HANDLE*,
                                 PBYTE, DWORD, DWORD) {
  return unsupported("ImportKey");
}
SECURITY_STATUS WINAPI ExportKey(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE, NCRYPT_KEY_HANDLE, LPCWSTR, NCryptBufferDesc*,
                                 PBYTE, DWORD, DWORD*, DWORD) {
  return unsupported("ExportKey");
}
SECURITY_STATUS WINAPI VerifySignature(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE, VOID*, PBYTE, DWORD, PBYTE, DWORD, DWORD) {
  return unsupported("VerifySignature");
}
SECURITY_STATUS WINAPI PromptUser(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE, LPCWSTR, DWORD) {
  return unsupported("PromptUser");
}
SECURITY_STATUS WINAPI NotifyChangeKey(NCRYPT_PROV_HANDLE, HANDLE*, DWORD) { return unsupported("NotifyChangeKey"); }
SECURITY_STATUS WINAPI SecretAgreement(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE, NCRYPT_KEY_HANDLE, NCRYPT_SECRET_HANDLE*,
                                       DWORD) {
  return unsupported("SecretAgreement");
}
SECURITY_STATUS WINAPI DeriveKey(NCRYPT_PROV_HANDLE, NCRYPT_SECRET_HANDLE, LPCWSTR, NCryptBufferDesc*, PBYTE, DWORD,
                                 DWORD*, ULONG) {
  return unsupported("DeriveKey");
}
SECURITY_STATUS WINAPI FreeSecret(NCRYPT_PROV_HANDLE, NCRYPT_SECRET_HANDLE) { return unsupported("FreeSecret"); }

KspFunctionTable TABLE = {
    NCRYPT_KEY_STORAGE_INTERFACE_VERSION,
    OpenProvider, OpenKey, CreatePersistedKey, GetProviderProperty, GetKeyProperty, SetProviderProperty,
    SetKeyProperty, FinalizeKey, DeleteKey, FreeProvider, FreeKey, FreeBuffer, Encrypt, Decrypt, IsAlgSupported,
    EnumAlgorithms, EnumKeys, ImportKey, ExportKey, SignHash, VerifySignature, PromptUser, NotifyChangeKey,
    SecretAgreement, DeriveKey, FreeSecret,
};

}  // namespace

extern "C" NTSTATUS WINAPI GetKeyStorageInterface(LPCWSTR, KspFunctionTable** table, DWORD) {
  if (!table) return static_cast<NTSTATUS>(0xC000000DL);  // STATUS_INVALID_PARAMETER
  *table = &TABLE;
  return 0;  // STATUS_SUCCESS
}
