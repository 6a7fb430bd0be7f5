// certsync / certdesync / certlist: certificates in the current user's My store whose private
// key is a signbridge KSP key (CERT_KEY_PROV_INFO_PROP_ID → provider, key name, dwProvType 0),
// so signtool /sha1 <thumbprint> finds the key through CNG (as smctl windows certsync does).
#pragma once
#include <string>

namespace sb::win {

// Adds (or replaces) the certificate `der_hex` with its key link to `key_name`. 0 or an exit code.
int cert_sync(const std::wstring& key_name, const std::string& der_hex);
// Removes every certificate of the store whose key link names the signbridge KSP.
int cert_desync();
// Prints one line per linked certificate, read back with CertFindCertificateInStore and
// CertGetCertificateContextProperty: "CERT <sha1 thumbprint> <provider>|<key>|<prov type>|<key spec>".
int cert_list();

}  // namespace sb::win
