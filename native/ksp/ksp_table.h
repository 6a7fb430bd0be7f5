// The CNG key storage provider interface (Windows SDK ncrypt_provider.h, which mingw-w64 does
// not ship), declared from Microsoft's documentation of NCRYPT_KEY_STORAGE_FUNCTION_TABLE:
// https://learn.microsoft.com/windows/win32/seccng/key-storage-property-identifiers and the
// "Cryptographic Provider Development Kit". The order of the 26 pointers is the ABI: the router
// calls them by position, so it must match the SDK exactly (version 1.0 has these 26).
#pragma once
#include <windows.h>
#include <bcrypt.h>
#include <ncrypt.h>

extern "C" {

typedef SECURITY_STATUS(WINAPI* KspOpenProviderFn)(NCRYPT_PROV_HANDLE*, LPCWSTR, DWORD);
typedef SECURITY_STATUS(WINAPI* KspOpenKeyFn)(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE*, LPCWSTR, DWORD, DWORD);
typedef SECURITY_STATUS(WINAPI* KspCreatePersistedKeyFn)(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE*, LPCWSTR, LPCWSTR,
                                                         DWORD, DWORD);
typedef SECURITY_STATUS(WINAPI* KspGetProviderPropertyFn)(NCRYPT_PROV_HANDLE, LPCWSTR, PBYTE, DWORD, DWORD*, DWORD);
typedef SECURITY_STATUS(WINAPI* KspGetKeyPropertyFn)(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE, LPCWSTR, PBYTE, DWORD,
                                                     DWORD*, DWORD);
typedef SECURITY_STATUS(WINAPI* KspSetProviderPropertyFn)(NCRYPT_PROV_HANDLE, LPCWSTR, PBYTE, DWORD, DWORD);
typedef SECURITY_STATUS(WINAPI* KspSetKeyPropertyFn)(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE, LPCWSTR, PBYTE, DWORD,
                                                     DWORD);
typedef SECURITY_STATUS(WINAPI* KspFinalizeKeyFn)(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE, DWORD);
typedef SECURITY_STATUS(WINAPI* KspDeleteKeyFn)(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE, DWORD);
typedef SECURITY_STATUS(WINAPI* KspFreeProviderFn)(NCRYPT_PROV_HANDLE);
typedef SECURITY_STATUS(WINAPI* KspFreeKeyFn)(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE);
typedef SECURITY_STATUS(WINAPI* KspFreeBufferFn)(PVOID);
typedef SECURITY_STATUS(WINAPI* KspEncryptFn)(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE, PBYTE, DWORD, VOID*, PBYTE, DWORD,
                                              DWORD*, DWORD);
typedef SECURITY_STATUS(WINAPI* KspDecryptFn)(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE, PBYTE, DWORD, VOID*, PBYTE, DWORD,
                                              DWORD*, DWORD);
typedef SECURITY_STATUS(WINAPI* KspIsAlgSupportedFn)(NCRYPT_PROV_HANDLE, LPCWSTR, DWORD);
typedef SECURITY_STATUS(WINAPI* KspEnumAlgorithmsFn)(NCRYPT_PROV_HANDLE, DWORD, DWORD*, NCryptAlgorithmName**, DWORD);
typedef SECURITY_STATUS(WINAPI* KspEnumKeysFn)(NCRYPT_PROV_HANDLE, LPCWSTR, NCryptKeyName**, PVOID*, DWORD);
typedef SECURITY_STATUS(WINAPI* KspImportKeyFn)(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE, LPCWSTR, NCryptBufferDesc*,
                                                NCRYPT_KEY_HANDLE*, PBYTE, DWORD, DWORD);
typedef SECURITY_STATUS(WINAPI* KspExportKeyFn)(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE, NCRYPT_KEY_HANDLE, LPCWSTR,
                                                NCryptBufferDesc*, PBYTE, DWORD, DWORD*, DWORD);
typedef SECURITY_STATUS(WINAPI* KspSignHashFn)(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE, VOID*, PBYTE, DWORD, PBYTE, DWORD,
                                               DWORD*, DWORD);
typedef SECURITY_STATUS(WINAPI* KspVerifySignatureFn)(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE, VOID*, PBYTE, DWORD, PBYTE,
                                                      DWORD, DWORD);
typedef SECURITY_STATUS(WINAPI* KspPromptUserFn)(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE, LPCWSTR, DWORD);
typedef SECURITY_STATUS(WINAPI* KspNotifyChangeKeyFn)(NCRYPT_PROV_HANDLE, HANDLE*, DWORD);
typedef SECURITY_STATUS(WINAPI* KspSecretAgreementFn)(NCRYPT_PROV_HANDLE, NCRYPT_KEY_HANDLE, NCRYPT_KEY_HANDLE,
                                                      NCRYPT_SECRET_HANDLE*, DWORD);
typedef SECURITY_STATUS(WINAPI* KspDeriveKeyFn)(NCRYPT_PROV_HANDLE, NCRYPT_SECRET_HANDLE, LPCWSTR, NCryptBufferDesc*,
                                                PBYTE, DWORD, DWORD*, ULONG);
typedef SECURITY_STATUS(WINAPI* KspFreeSecretFn)(NCRYPT_PROV_HANDLE, NCRYPT_SECRET_HANDLE);

// NCRYPT_KEY_STORAGE_FUNCTION_TABLE, version NCRYPT_KEY_STORAGE_INTERFACE_VERSION (1.0).
struct KspFunctionTable {
  BCRYPT_INTERFACE_VERSION Version;
  KspOpenProviderFn OpenProvider;
  KspOpenKeyFn OpenKey;
  KspCreatePersistedKeyFn CreatePersistedKey;
  KspGetProviderPropertyFn GetProviderProperty;
  KspGetKeyPropertyFn GetKeyProperty;
  KspSetProviderPropertyFn SetProviderProperty;
  KspSetKeyPropertyFn SetKeyProperty;
  KspFinalizeKeyFn FinalizeKey;
  KspDeleteKeyFn DeleteKey;
  KspFreeProviderFn FreeProvider;
  KspFreeKeyFn FreeKey;
  KspFreeBufferFn FreeBuffer;
  KspEncryptFn Encrypt;
  KspDecryptFn Decrypt;
  KspIsAlgSupportedFn IsAlgSupported;
  KspEnumAlgorithmsFn EnumAlgorithms;
  KspEnumKeysFn EnumKeys;
  KspImportKeyFn ImportKey;
  KspExportKeyFn ExportKey;
  KspSignHashFn SignHash;
  KspVerifySignatureFn VerifySignature;
  KspPromptUserFn PromptUser;
  KspNotifyChangeKeyFn NotifyChangeKey;
  KspSecretAgreementFn SecretAgreement;
  KspDeriveKeyFn DeriveKey;
  KspFreeSecretFn FreeSecret;
};

// The one exported entry point (signbridge-ksp.def).
__declspec(dllexport) NTSTATUS WINAPI GetKeyStorageInterface(LPCWSTR pszProviderName, KspFunctionTable** ppFunctionTable,
                                                             DWORD dwFlags);
}

// Layout checks against the SDK: a 4-byte version, padding, then 26 pointers.
static_assert(sizeof(void*) != 8 || sizeof(KspFunctionTable) == 8 + 26 * 8, "NCRYPT_KEY_STORAGE_FUNCTION_TABLE layout");
static_assert(offsetof(KspFunctionTable, FreeSecret) == sizeof(KspFunctionTable) - sizeof(void*), "FreeSecret is last");
