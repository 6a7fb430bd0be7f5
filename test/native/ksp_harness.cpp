// ksp_harness.exe <signbridge-ksp.dll> <key name>...: drives the KSP DLL the way the CNG router
// does (Wine's ncrypt never loads a third-party KSP, so the test loads it itself):
// LoadLibrary → GetKeyStorageInterface → OpenProvider → EnumKeys → OpenKey → GetKeyProperty →
// SignHash (size query, short buffer, then the call) → Free*. Each signature is verified here
// with BCryptVerifySignature against the key's certificate and printed for a second, native
// check with node:crypto (test/e2e/windows-ksp.test.ts). Output lines:
//   CHECK ok|FAIL <what>
//   KEY <name> <algorithm> <bits> <certificate DER hex>
//   SIG <name> <PKCS1|PSS|ECDSA> <SHA256|SHA384> <message hex> <signature hex>
// ksp_harness.exe <dll> --no-daemon: OpenKey with no daemon on the pipe → NTE_DEVICE_NOT_READY,
// and how long that took ("ELAPSED_MS <n>").
#include <windows.h>
#include <bcrypt.h>
#include <ncrypt.h>
#include <wincrypt.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "../../native/ksp/ksp_table.h"

static int failures = 0;

static void check(bool ok, const std::string& what) {
  printf("CHECK %s %s\n", ok ? "ok" : "FAIL", what.c_str());
  if (!ok) failures++;
}

static std::string hex(const BYTE* p, size_t n) {
  std::string s;
  char b[3];
  for (size_t i = 0; i < n; i++) {
    snprintf(b, sizeof b, "%02x", p[i]);
    s += b;
  }
  return s;
}

static std::wstring wide(const char* s) {
  std::wstring w;
  while (*s) w += static_cast<wchar_t>(*s++);
  return w;
}

static std::string narrow(const wchar_t* w) {
  std::string s;
  while (w && *w) s += static_cast<char>(*w++);
  return s;
}

static std::string status(SECURITY_STATUS st) {
  char b[16];
  snprintf(b, sizeof b, "0x%08lx", static_cast<unsigned long>(st));
  return b;
}

static std::vector<BYTE> digest(LPCWSTR alg, const std::string& msg) {
  BCRYPT_ALG_HANDLE a = nullptr;
  BCRYPT_HASH_HANDLE h = nullptr;
  DWORD len = 0, got = 0;
  std::vector<BYTE> out;
  if (BCryptOpenAlgorithmProvider(&a, alg, nullptr, 0) != 0) return out;
  BCryptGetProperty(a, BCRYPT_HASH_LENGTH, reinterpret_cast<PUCHAR>(&len), sizeof len, &got, 0);
  out.resize(len);
  BCryptCreateHash(a, &h, nullptr, 0, nullptr, 0, 0);
  BCryptHashData(h, reinterpret_cast<PUCHAR>(const_cast<char*>(msg.data())), static_cast<ULONG>(msg.size()), 0);
  BCryptFinishHash(h, out.data(), len, 0);
  BCryptDestroyHash(h);
  BCryptCloseAlgorithmProvider(a, 0);
  return out;
}

static std::vector<BYTE> key_prop(KspFunctionTable* t, NCRYPT_PROV_HANDLE p, NCRYPT_KEY_HANDLE k, LPCWSTR name,
                                  SECURITY_STATUS* st) {
  DWORD n = 0;
  *st = t->GetKeyProperty(p, k, name, nullptr, 0, &n, 0);
  std::vector<BYTE> v(n);
  if (*st == ERROR_SUCCESS) *st = t->GetKeyProperty(p, k, name, v.data(), n, &n, 0);
  v.resize(n);
  return v;
}

static DWORD as_dword(const std::vector<BYTE>& v) {
  DWORD d = 0;
  if (v.size() == sizeof d) memcpy(&d, v.data(), sizeof d);
  return d;
}

struct Scheme {
  const char* name;  // PKCS1 / PSS / ECDSA
  LPCWSTR hash;
  const char* hash_name;
};

static void sign_one(KspFunctionTable* t, NCRYPT_PROV_HANDLE p, NCRYPT_KEY_HANDLE k, BCRYPT_KEY_HANDLE pub,
                     const std::string& key, const Scheme& s) {
  std::string msg = "signbridge KSP test: " + key + " " + s.name + " " + s.hash_name;
  std::vector<BYTE> h = digest(s.hash, msg);
  BCRYPT_PKCS1_PADDING_INFO pkcs1{s.hash};
  BCRYPT_PSS_PADDING_INFO pss{s.hash, static_cast<ULONG>(h.size())};
  void* pad = nullptr;
  DWORD flags = 0;
  if (!strcmp(s.name, "PKCS1")) pad = &pkcs1, flags = BCRYPT_PAD_PKCS1;
  if (!strcmp(s.name, "PSS")) pad = &pss, flags = BCRYPT_PAD_PSS;
  const std::string what = key + " " + s.name + " " + s.hash_name;
  DWORD n = 0;
  SECURITY_STATUS st = t->SignHash(p, k, pad, h.data(), static_cast<DWORD>(h.size()), nullptr, 0, &n, flags);
  check(st == ERROR_SUCCESS && n > 0, what + ": size query " + status(st) + " → " + std::to_string(n));
  std::vector<BYTE> sig(n);
  DWORD short_n = 0;
  st = t->SignHash(p, k, pad, h.data(), static_cast<DWORD>(h.size()), sig.data(), n - 1, &short_n, flags);
  check(st == NTE_BUFFER_TOO_SMALL && short_n == n, what + ": a short buffer is NTE_BUFFER_TOO_SMALL with the size");
  st = t->SignHash(p, k, pad, h.data(), static_cast<DWORD>(h.size()), sig.data(), n, &n, flags);
  check(st == ERROR_SUCCESS && n == sig.size(), what + ": SignHash " + status(st));
  if (st != ERROR_SUCCESS) return;
  NTSTATUS v = BCryptVerifySignature(pub, pad, h.data(), static_cast<ULONG>(h.size()), sig.data(), n, flags);
  check(v == 0, what + ": BCryptVerifySignature " + status(v));
  printf("SIG %s %s %s %s %s\n", key.c_str(), s.name, s.hash_name,
         hex(reinterpret_cast<const BYTE*>(msg.data()), msg.size()).c_str(), hex(sig.data(), n).c_str());
}

static void test_key(KspFunctionTable* t, NCRYPT_PROV_HANDLE p, const std::string& key) {
  NCRYPT_KEY_HANDLE k = 0;
  SECURITY_STATUS st = t->OpenKey(p, &k, wide(key.c_str()).c_str(), 0, 0);
  check(st == ERROR_SUCCESS && k != 0, "OpenKey " + key + " " + status(st));
  if (st != ERROR_SUCCESS) return;
  std::vector<BYTE> group = key_prop(t, p, k, NCRYPT_ALGORITHM_GROUP_PROPERTY, &st);
  std::string grp = narrow(reinterpret_cast<const wchar_t*>(group.data()));
  check(st == ERROR_SUCCESS && (grp == "RSA" || grp == "ECDSA"), key + ": algorithm group " + grp);
  std::string alg = narrow(reinterpret_cast<const wchar_t*>(key_prop(t, p, k, NCRYPT_ALGORITHM_PROPERTY, &st).data()));
  check(st == ERROR_SUCCESS, key + ": algorithm " + alg);
  DWORD bits = as_dword(key_prop(t, p, k, NCRYPT_LENGTH_PROPERTY, &st));
  check(st == ERROR_SUCCESS && bits >= 256, key + ": length " + std::to_string(bits));
  DWORD usage = as_dword(key_prop(t, p, k, NCRYPT_KEY_USAGE_PROPERTY, &st));
  check(st == ERROR_SUCCESS && usage == NCRYPT_ALLOW_SIGNING_FLAG, key + ": key usage = signing");
  DWORD policy = as_dword(key_prop(t, p, k, NCRYPT_EXPORT_POLICY_PROPERTY, &st));
  check(st == ERROR_SUCCESS && policy == 0, key + ": export policy none");
  std::string nm = narrow(reinterpret_cast<const wchar_t*>(key_prop(t, p, k, NCRYPT_NAME_PROPERTY, &st).data()));
  check(st == ERROR_SUCCESS && nm == key, key + ": name " + nm);
  std::vector<BYTE> ph = key_prop(t, p, k, NCRYPT_PROVIDER_HANDLE_PROPERTY, &st);
  check(st == ERROR_SUCCESS && ph.size() == sizeof p && memcmp(ph.data(), &p, sizeof p) == 0, key + ": provider handle");
  std::vector<BYTE> cert = key_prop(t, p, k, NCRYPT_CERTIFICATE_PROPERTY, &st);
  check(st == ERROR_SUCCESS && cert.size() > 100, key + ": certificate blob of " + std::to_string(cert.size()) + " bytes");
  DWORD n = 0;
  st = t->GetKeyProperty(p, k, L"No Such Property", nullptr, 0, &n, 0);
  check(st == NTE_NOT_SUPPORTED, key + ": an unknown property is NTE_NOT_SUPPORTED");
  printf("KEY %s %s %lu %s\n", key.c_str(), alg.c_str(), static_cast<unsigned long>(bits),
         hex(cert.data(), cert.size()).c_str());

  PCCERT_CONTEXT cc = CertCreateCertificateContext(X509_ASN_ENCODING, cert.data(), static_cast<DWORD>(cert.size()));
  BCRYPT_KEY_HANDLE pub = nullptr;
  bool imported = cc && CryptImportPublicKeyInfoEx2(X509_ASN_ENCODING, &cc->pCertInfo->SubjectPublicKeyInfo, 0,
                                                     nullptr, &pub);
  check(imported, key + ": the certificate's public key imports into bcrypt");
  if (imported) {
    if (grp == "RSA") {
      for (Scheme s : {Scheme{"PKCS1", BCRYPT_SHA256_ALGORITHM, "SHA256"}, Scheme{"PKCS1", BCRYPT_SHA384_ALGORITHM, "SHA384"},
                       Scheme{"PSS", BCRYPT_SHA256_ALGORITHM, "SHA256"}})
        sign_one(t, p, k, pub, key, s);
    } else {
      Scheme s = bits == 384 ? Scheme{"ECDSA", BCRYPT_SHA384_ALGORITHM, "SHA384"} : Scheme{"ECDSA", BCRYPT_SHA256_ALGORITHM, "SHA256"};
      sign_one(t, p, k, pub, key, s);
    }
    BCryptDestroyKey(pub);
  }
  if (cc) CertFreeCertificateContext(cc);
  check(t->FreeKey(p, k) == ERROR_SUCCESS, key + ": FreeKey");
  check(t->FreeKey(p, k) == NTE_INVALID_HANDLE, key + ": a freed key handle is NTE_INVALID_HANDLE");
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: ksp_harness <signbridge-ksp.dll> <key name>...\n");
    return 2;
  }
  HMODULE dll = LoadLibraryA(argv[1]);
  check(dll != nullptr, std::string("LoadLibrary ") + argv[1]);
  if (!dll) return 1;
  auto get = reinterpret_cast<decltype(&GetKeyStorageInterface)>(GetProcAddress(dll, "GetKeyStorageInterface"));
  check(get != nullptr, "GetProcAddress(GetKeyStorageInterface)");
  if (!get) return 1;
  KspFunctionTable* t = nullptr;
  check(get(L"Signbridge Key Storage Provider", &t, 0) == 0 && t && t->Version.MajorVersion == 1, "GetKeyStorageInterface → table 1.0");
  NCRYPT_PROV_HANDLE p = 0;
  SECURITY_STATUS st = t->OpenProvider(&p, L"Signbridge Key Storage Provider", 0);
  check(st == ERROR_SUCCESS && p != 0, "OpenProvider " + status(st));
  if (argc == 3 && !strcmp(argv[2], "--no-daemon")) {
    NCRYPT_KEY_HANDLE k = 0;
    ULONGLONG start = GetTickCount64();
    st = t->OpenKey(p, &k, L"codesign-ec", 0, 0);
    printf("ELAPSED_MS %llu\n", static_cast<unsigned long long>(GetTickCount64() - start));
    check(st == NTE_DEVICE_NOT_READY, "OpenKey with no daemon is NTE_DEVICE_NOT_READY " + status(st));
    check(t->FreeProvider(p) == ERROR_SUCCESS, "FreeProvider");
    printf("DONE %d failed\n", failures);
    return failures ? 1 : 0;
  }
  DWORD n = 0;
  st = t->GetProviderProperty(p, NCRYPT_NAME_PROPERTY, nullptr, 0, &n, 0);
  std::vector<BYTE> pname(n);
  if (st == ERROR_SUCCESS) st = t->GetProviderProperty(p, NCRYPT_NAME_PROPERTY, pname.data(), n, &n, 0);
  check(st == ERROR_SUCCESS && narrow(reinterpret_cast<const wchar_t*>(pname.data())) == "Signbridge Key Storage Provider",
        "GetProviderProperty(Name)");
  check(t->IsAlgSupported(p, L"ECDSA_P384", 0) == ERROR_SUCCESS && t->IsAlgSupported(p, L"AES", 0) == NTE_NOT_SUPPORTED,
        "IsAlgSupported: ECDSA_P384 yes, AES no");

  std::string listed;
  NCryptKeyName* kn = nullptr;
  PVOID state = nullptr;
  while ((st = t->EnumKeys(p, nullptr, &kn, &state, 0)) == ERROR_SUCCESS) {
    listed += " " + narrow(kn->pszName) + "(" + narrow(kn->pszAlgid) + ")";
    t->FreeBuffer(kn);
  }
  check(st == NTE_NO_MORE_ITEMS && state != nullptr, "EnumKeys ends with NTE_NO_MORE_ITEMS:" + listed);
  printf("ENUM%s\n", listed.c_str());
  t->FreeBuffer(state);
  for (int i = 2; i < argc; i++)
    check(listed.find(" " + std::string(argv[i]) + "(") != std::string::npos, std::string("EnumKeys lists ") + argv[i]);

  NCRYPT_KEY_HANDLE none = 0;
  st = t->OpenKey(p, &none, L"no-such-key", 0, 0);
  check(st == NTE_BAD_KEYSET, "OpenKey of an unknown name is NTE_BAD_KEYSET " + status(st));
  NCRYPT_KEY_HANDLE made = 0;
  check(t->CreatePersistedKey(p, &made, L"RSA", L"new", 0, 0) == NTE_NOT_SUPPORTED, "CreatePersistedKey is NTE_NOT_SUPPORTED");

  for (int i = 2; i < argc; i++) test_key(t, p, argv[i]);

  check(t->FreeProvider(p) == ERROR_SUCCESS, "FreeProvider");
  check(t->FreeProvider(p) == NTE_INVALID_HANDLE, "a freed provider handle is NTE_INVALID_HANDLE");
  printf("DONE %d failed\n", failures);
  return failures ? 1 : 0;
}
