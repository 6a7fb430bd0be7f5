#include "cert_store.h"

#include <windows.h>
#include <wincrypt.h>

#include <cstdio>
#include <vector>

#include "win_text.h"

namespace sb::win {

namespace {

constexpr const wchar_t* PROVIDER = L"Signbridge Key Storage Provider";

// The registry-backed physical store HKCU\Software\Microsoft\SystemCertificates\My (what the
// "My" system store shows signtool): deleting through the system (collection) store does not
// persist under Wine.
HCERTSTORE open_my() {
  return CertOpenStore(CERT_STORE_PROV_SYSTEM_REGISTRY_W, 0, 0, CERT_SYSTEM_STORE_CURRENT_USER, L"My");
}

std::string thumbprint(PCCERT_CONTEXT c) {
  BYTE h[20];
  DWORD n = sizeof h;
  if (!CertGetCertificateContextProperty(c, CERT_SHA1_HASH_PROP_ID, h, &n)) return "?";
  return hex(h, n);
}

// The key link of a certificate, or false when it has none.
bool key_link(PCCERT_CONTEXT c, std::vector<BYTE>& buf, CRYPT_KEY_PROV_INFO*& info) {
  DWORD n = 0;
  if (!CertGetCertificateContextProperty(c, CERT_KEY_PROV_INFO_PROP_ID, nullptr, &n)) return false;
  buf.resize(n);
  if (!CertGetCertificateContextProperty(c, CERT_KEY_PROV_INFO_PROP_ID, buf.data(), &n)) return false;
  info = reinterpret_cast<CRYPT_KEY_PROV_INFO*>(buf.data());
  return true;
}

bool ours(PCCERT_CONTEXT c, std::vector<BYTE>& buf, CRYPT_KEY_PROV_INFO*& info) {
  return key_link(c, buf, info) && info->pwszProvName && lstrcmpiW(info->pwszProvName, PROVIDER) == 0;
}

}  // namespace

int cert_sync(const std::wstring& key_name, const std::string& der_hex) {
  std::vector<BYTE> der;
  if (!unhex(der_hex, der) || der.empty()) return fail(2, "certsync: the certificate is not hex-encoded DER");
  PCCERT_CONTEXT c = CertCreateCertificateContext(X509_ASN_ENCODING, der.data(), static_cast<DWORD>(der.size()));
  if (!c) return fail(3, "certsync: not an X.509 certificate (" + last_error() + ")");
  HCERTSTORE store = open_my();
  if (!store) {
    CertFreeCertificateContext(c);
    return fail(3, "certsync: cannot open the current user's My store (" + last_error() + ")");
  }
  PCCERT_CONTEXT added = nullptr;
  int rc = 0;
  if (!CertAddCertificateContextToStore(store, c, CERT_STORE_ADD_REPLACE_EXISTING, &added)) {
    rc = fail(3, "certsync: adding the certificate to My failed (" + last_error() + ")");
  } else {
    CRYPT_KEY_PROV_INFO info = {};
    info.pwszContainerName = const_cast<wchar_t*>(key_name.c_str());
    info.pwszProvName = const_cast<wchar_t*>(PROVIDER);
    info.dwProvType = 0;  // 0: a CNG key storage provider, not a legacy CSP
    info.dwKeySpec = 0;
    std::wstring friendly = L"signbridge: " + key_name;
    CRYPT_DATA_BLOB fn = {static_cast<DWORD>((friendly.size() + 1) * sizeof(wchar_t)),
                          reinterpret_cast<BYTE*>(const_cast<wchar_t*>(friendly.c_str()))};
    if (!CertSetCertificateContextProperty(added, CERT_KEY_PROV_INFO_PROP_ID, 0, &info) ||
        !CertSetCertificateContextProperty(added, CERT_FRIENDLY_NAME_PROP_ID, 0, &fn)) {
      rc = fail(3, "certsync: linking the certificate to the key failed (" + last_error() + ")");
    } else {
      printf("linked %s (HKCU My) -> \"Signbridge Key Storage Provider\" key \"%s\"\n", thumbprint(added).c_str(),
             utf8(key_name).c_str());
    }
    CertFreeCertificateContext(added);
  }
  CertCloseStore(store, 0);
  CertFreeCertificateContext(c);
  return rc;
}

int cert_desync() {
  HCERTSTORE store = open_my();
  if (!store) return fail(3, "certdesync: cannot open the current user's My store (" + last_error() + ")");
  // Collect first, delete after: deleting while enumerating makes Wine's enumeration start over.
  std::vector<PCCERT_CONTEXT> doomed;
  PCCERT_CONTEXT c = nullptr;
  while ((c = CertEnumCertificatesInStore(store, c)) != nullptr) {
    std::vector<BYTE> buf;
    CRYPT_KEY_PROV_INFO* info = nullptr;
    if (ours(c, buf, info)) doomed.push_back(CertDuplicateCertificateContext(c));
  }
  int rc = 0;
  for (PCCERT_CONTEXT d : doomed) {
    std::vector<BYTE> buf;
    CRYPT_KEY_PROV_INFO* info = nullptr;
    std::string key = ours(d, buf, info) ? utf8(info->pwszContainerName) : "?";
    std::string tp = thumbprint(d);
    if (CertDeleteCertificateFromStore(d)) {  // frees d, success or not
      printf("removed %s (HKCU My, key \"%s\")\n", tp.c_str(), key.c_str());
    } else {
      rc = fail(3, "certdesync: removing " + tp + " failed (" + last_error() + ")");
    }
  }
  CertCloseStore(store, 0);
  if (doomed.empty()) printf("no signbridge certificates in HKCU My\n");
  return rc;
}

int cert_list() {
  HCERTSTORE store = open_my();
  if (!store) return fail(3, "certlist: cannot open the current user's My store (" + last_error() + ")");
  PCCERT_CONTEXT c = nullptr;
  while ((c = CertFindCertificateInStore(store, X509_ASN_ENCODING, 0, CERT_FIND_ANY, nullptr, c)) != nullptr) {
    std::vector<BYTE> buf;
    CRYPT_KEY_PROV_INFO* info = nullptr;
    if (!ours(c, buf, info)) continue;
    printf("CERT %s %s|%s|%lu|%lu\n", thumbprint(c).c_str(), utf8(info->pwszProvName).c_str(),
           utf8(info->pwszContainerName).c_str(), static_cast<unsigned long>(info->dwProvType),
           static_cast<unsigned long>(info->dwKeySpec));
  }
  CertCloseStore(store, 0);
  return 0;
}

}  // namespace sb::win
