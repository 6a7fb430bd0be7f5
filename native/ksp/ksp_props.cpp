#include "ksp_props.h"

#include <cstring>

namespace sb::ksp {

namespace {

void put_dword(std::vector<uint8_t>& out, DWORD v) {
  out.resize(sizeof v);
  memcpy(out.data(), &v, sizeof v);
}

// A wide string property: UTF-16 with its terminating NUL (what NCryptGetProperty returns).
void put_wstr(std::vector<uint8_t>& out, const std::wstring& s) {
  out.resize((s.size() + 1) * sizeof(wchar_t));
  memcpy(out.data(), s.c_str(), out.size());
}

}  // namespace

bool provider_property(const std::wstring& name, std::vector<uint8_t>& out) {
  if (name == NCRYPT_NAME_PROPERTY) put_wstr(out, PROVIDER_NAME);
  else if (name == NCRYPT_VERSION_PROPERTY) put_dword(out, 0x00010000);  // 1.0
  // The keys live in the daemon's store (an HSM, STM), never in this process.
  else if (name == NCRYPT_IMPL_TYPE_PROPERTY) put_dword(out, NCRYPT_IMPL_HARDWARE_FLAG);
  else if (name == NCRYPT_MAX_NAME_LENGTH_PROPERTY) put_dword(out, 255);
  else return false;
  return true;
}

bool key_property(const std::wstring& name, const KeyObject& ko, NCRYPT_PROV_HANDLE prov, std::vector<uint8_t>& out,
                  bool& missing) {
  const Key& k = ko.key;
  missing = false;
  if (name == NCRYPT_ALGORITHM_GROUP_PROPERTY) put_wstr(out, widen(algorithm_group(k)));
  else if (name == NCRYPT_ALGORITHM_PROPERTY) put_wstr(out, widen(algorithm_name(k)));
  else if (name == NCRYPT_LENGTH_PROPERTY) put_dword(out, k.bits);
  else if (name == NCRYPT_LENGTHS_PROPERTY) {
    NCRYPT_SUPPORTED_LENGTHS l{k.bits, k.bits, 0, k.bits};
    out.resize(sizeof l);
    memcpy(out.data(), &l, sizeof l);
  } else if (name == NCRYPT_KEY_USAGE_PROPERTY) put_dword(out, NCRYPT_ALLOW_SIGNING_FLAG);
  // Export policy none: the private key never leaves the daemon's store.
  else if (name == NCRYPT_EXPORT_POLICY_PROPERTY) put_dword(out, 0);
  else if (name == NCRYPT_NAME_PROPERTY || name == NCRYPT_UNIQUE_NAME_PROPERTY) put_wstr(out, widen(k.name));
  else if (name == NCRYPT_IMPL_TYPE_PROPERTY) put_dword(out, NCRYPT_IMPL_HARDWARE_FLAG);
  else if (name == NCRYPT_KEY_TYPE_PROPERTY) put_dword(out, 0);  // a user key, not NCRYPT_MACHINE_KEY_FLAG
  else if (name == NCRYPT_PROVIDER_HANDLE_PROPERTY) {
    out.resize(sizeof prov);
    memcpy(out.data(), &prov, sizeof prov);
  } else if (name == NCRYPT_ECC_CURVE_NAME_PROPERTY && k.alg == KeyAlg::Ec) {
    put_wstr(out, k.bits == 384 ? L"nistP384" : L"nistP256");
  } else if (name == NCRYPT_CERTIFICATE_PROPERTY) {
    if (k.certificate.empty()) missing = true;
    out = k.certificate;
  } else {
    return false;
  }
  return true;
}

SECURITY_STATUS copy_out(const uint8_t* value, size_t n, PBYTE out, DWORD cb_out, DWORD* pcb_result) {
  if (!pcb_result) return NTE_INVALID_PARAMETER;
  *pcb_result = static_cast<DWORD>(n);
  if (!out) return ERROR_SUCCESS;
  if (cb_out < n) return NTE_BUFFER_TOO_SMALL;
  if (n) memcpy(out, value, n);
  return ERROR_SUCCESS;
}

}  // namespace sb::ksp
