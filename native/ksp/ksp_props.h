// GetProviderProperty / GetKeyProperty: the value of each property this KSP answers, as bytes,
// and the two-call output convention they share (NULL buffer → size; short → NTE_BUFFER_TOO_SMALL).
#pragma once
#include <windows.h>
#include <ncrypt.h>

#include <cstdint>
#include <vector>

#include "ksp_provider.h"

// Newer than mingw-w64's ncrypt.h (Windows 10 SDK name of the curve property).
#ifndef NCRYPT_ECC_CURVE_NAME_PROPERTY
#define NCRYPT_ECC_CURVE_NAME_PROPERTY L"ECCCurveName"
#endif

namespace sb::ksp {

// false: the property is not one this KSP has (NTE_NOT_SUPPORTED; NTE_NOT_FOUND is set in
// `missing` for a known property without a value, e.g. a key with no certificate).
bool provider_property(const std::wstring& name, std::vector<uint8_t>& out);
bool key_property(const std::wstring& name, const KeyObject& key, NCRYPT_PROV_HANDLE prov, std::vector<uint8_t>& out,
                  bool& missing);

// CNG's two-call convention (NCryptGetProperty, NCryptSignHash): *pcbResult gets the size.
SECURITY_STATUS copy_out(const uint8_t* value, size_t n, PBYTE out, DWORD cb_out, DWORD* pcb_result);

}  // namespace sb::ksp
