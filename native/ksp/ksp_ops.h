// What each implemented KSP entry does (ksp_entry.cpp is the C boundary that calls these).
// Each returns a Failure: status ERROR_SUCCESS, or an NTE_ value with the sentence for the log.
#pragma once
#include "ksp_provider.h"

namespace sb::ksp {

Failure open_provider(NCRYPT_PROV_HANDLE* ph, LPCWSTR name, DWORD flags);
Failure open_key(NCRYPT_PROV_HANDLE hp, NCRYPT_KEY_HANDLE* phk, LPCWSTR name, DWORD legacy_spec, DWORD flags);
Failure get_provider_property(NCRYPT_PROV_HANDLE hp, LPCWSTR prop, PBYTE out, DWORD cb, DWORD* pcb, DWORD flags);
Failure get_key_property(NCRYPT_PROV_HANDLE hp, NCRYPT_KEY_HANDLE hk, LPCWSTR prop, PBYTE out, DWORD cb, DWORD* pcb,
                         DWORD flags);
Failure free_provider(NCRYPT_PROV_HANDLE hp);
Failure free_key(NCRYPT_PROV_HANDLE hp, NCRYPT_KEY_HANDLE hk);
Failure free_buffer_entry(PVOID p);
Failure is_alg_supported(NCRYPT_PROV_HANDLE hp, LPCWSTR alg, DWORD flags);
Failure enum_keys(NCRYPT_PROV_HANDLE hp, LPCWSTR scope, NCryptKeyName** out, PVOID* state, DWORD flags);
Failure sign_hash(NCRYPT_PROV_HANDLE hp, NCRYPT_KEY_HANDLE hk, VOID* padding, PBYTE hash, DWORD cb_hash, PBYTE sig,
                  DWORD cb_sig, DWORD* pcb, DWORD flags);

}  // namespace sb::ksp
