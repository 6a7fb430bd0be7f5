#include "ksp_ops.h"

#include <cstdio>
#include <cstring>

#include "../pkcs11/daemon_client.h"
#include "ksp_props.h"

namespace sb::ksp {

namespace {

constexpr DWORD ENUM_MAGIC = 0x53424b45;  // "EKBS": our EnumKeys state

struct EnumState {
  DWORD magic;
  size_t next;
};

Failure ok() { return {ERROR_SUCCESS, {}}; }

Failure bad_provider() {
  return {NTE_INVALID_HANDLE, "not a provider handle of this KSP (freed already, or from another provider)"};
}

Failure bad_key() { return {NTE_INVALID_HANDLE, "not a key handle of this KSP (freed already, or from another provider)"}; }

}  // namespace

Failure open_provider(NCRYPT_PROV_HANDLE* ph, LPCWSTR name, DWORD flags) {
  if (!ph) return {NTE_INVALID_PARAMETER, "OpenProvider: phProvider is NULL"};
  if (name && _wcsicmp(name, PROVIDER_NAME) != 0)
    return {NTE_INVALID_PARAMETER, "OpenProvider: this DLL is \"Signbridge Key Storage Provider\", not \"" + narrow(name) + "\""};
  // No I/O here: the daemon is asked at the first OpenKey / EnumKeys (as C_Initialize does nothing).
  *ph = add_provider(std::make_shared<Provider>());
  return ok();
}

Failure open_key(NCRYPT_PROV_HANDLE hp, NCRYPT_KEY_HANDLE* phk, LPCWSTR name, DWORD legacy_spec, DWORD flags) {
  auto prov = find_provider(hp);
  if (!prov) return bad_provider();
  if (!phk || !name) return {NTE_INVALID_PARAMETER, "OpenKey: phKey or pszKeyName is NULL"};
  const std::string want = narrow(name);
  if (flags & NCRYPT_MACHINE_KEY_FLAG)
    return {NTE_BAD_KEYSET, "OpenKey '" + want + "': signbridge has no machine keys; its keys belong to the user running the daemon (drop NCRYPT_MACHINE_KEY_FLAG / signtool /sm)"};
  Failure err;
  std::shared_ptr<const std::vector<Key>> keys;
  if (!prov->keys(false, keys, err)) return err;
  const Key* k = find_key(*keys, want);
  if (!k) {  // a key added since the inventory was fetched
    if (!prov->keys(true, keys, err)) return err;
    k = find_key(*keys, want);
  }
  if (!k) {
    std::string names;
    for (const Key& x : *keys) names += (names.empty() ? "" : ", ") + x.name;
    return {NTE_BAD_KEYSET, "OpenKey: the daemon has no signing key named '" + want + "' (keys: " +
                                (names.empty() ? "none" : names) + "; `signbridge keys` lists them)"};
  }
  auto obj = std::make_shared<KeyObject>();
  obj->provider = prov;
  obj->key = *k;
  *phk = add_key(std::move(obj));
  return ok();
}

Failure get_provider_property(NCRYPT_PROV_HANDLE hp, LPCWSTR prop, PBYTE out, DWORD cb, DWORD* pcb, DWORD flags) {
  if (!find_provider(hp)) return bad_provider();
  if (!prop || !pcb) return {NTE_INVALID_PARAMETER, "GetProviderProperty: pszProperty or pcbResult is NULL"};
  std::vector<uint8_t> v;
  if (!provider_property(prop, v)) return {NTE_NOT_SUPPORTED, "GetProviderProperty: no property \"" + narrow(prop) + "\""};
  SECURITY_STATUS st = copy_out(v.data(), v.size(), out, cb, pcb);
  if (st != ERROR_SUCCESS) return {st, "GetProviderProperty \"" + narrow(prop) + "\": the buffer is too small"};
  return ok();
}

Failure get_key_property(NCRYPT_PROV_HANDLE hp, NCRYPT_KEY_HANDLE hk, LPCWSTR prop, PBYTE out, DWORD cb, DWORD* pcb,
                         DWORD flags) {
  if (!find_provider(hp)) return bad_provider();
  auto key = find_key_object(hk);
  if (!key) return bad_key();
  if (!prop || !pcb) return {NTE_INVALID_PARAMETER, "GetKeyProperty: pszProperty or pcbResult is NULL"};
  std::vector<uint8_t> v;
  bool missing = false;
  if (!key_property(prop, *key, hp, v, missing))
    return {NTE_NOT_SUPPORTED, "GetKeyProperty '" + key->key.name + "': no property \"" + narrow(prop) + "\""};
  if (missing)
    return {NTE_NOT_FOUND, "GetKeyProperty '" + key->key.name + "': the daemon has no certificate with this key's CKA_ID"};
  SECURITY_STATUS st = copy_out(v.data(), v.size(), out, cb, pcb);
  if (st != ERROR_SUCCESS) return {st, "GetKeyProperty \"" + narrow(prop) + "\": the buffer is too small"};
  return ok();
}

Failure free_provider(NCRYPT_PROV_HANDLE hp) {
  return remove_provider(hp) ? ok() : bad_provider();
}

Failure free_key(NCRYPT_PROV_HANDLE hp, NCRYPT_KEY_HANDLE hk) {
  if (!find_provider(hp)) return bad_provider();
  return remove_key(hk) ? ok() : bad_key();
}

Failure free_buffer_entry(PVOID p) {
  if (!p) return ok();
  return free_buffer(p) ? ok() : Failure{NTE_INVALID_PARAMETER, "FreeBuffer: not a buffer this KSP handed out"};
}

Failure is_alg_supported(NCRYPT_PROV_HANDLE hp, LPCWSTR alg, DWORD flags) {
  if (!find_provider(hp)) return bad_provider();
  if (!alg) return {NTE_INVALID_PARAMETER, "IsAlgSupported: pszAlgId is NULL"};
  for (const wchar_t* a : {L"RSA", L"ECDSA", L"ECDSA_P256", L"ECDSA_P384"})
    if (wcscmp(alg, a) == 0) return ok();
  return {NTE_NOT_SUPPORTED, "IsAlgSupported: signbridge signs with RSA, ECDSA_P256 and ECDSA_P384, not \"" + narrow(alg) + "\""};
}

Failure enum_keys(NCRYPT_PROV_HANDLE hp, LPCWSTR scope, NCryptKeyName** out, PVOID* state, DWORD flags) {
  auto prov = find_provider(hp);
  if (!prov) return bad_provider();
  if (!out || !state) return {NTE_INVALID_PARAMETER, "EnumKeys: ppKeyName or ppEnumState is NULL"};
  if (flags & NCRYPT_MACHINE_KEY_FLAG) return {NTE_NO_MORE_ITEMS, {}};  // no machine keys (open_key)
  auto* st = static_cast<EnumState*>(*state);
  if (st && st->magic != ENUM_MAGIC) return {NTE_INVALID_PARAMETER, "EnumKeys: ppEnumState is not this KSP's"};
  Failure err;
  std::shared_ptr<const std::vector<Key>> keys;
  // A new enumeration asks the daemon again, so `certutil -key` shows keys added since.
  if (!prov->keys(st == nullptr, keys, err)) return err;
  if (!st) {
    st = static_cast<EnumState*>(alloc_buffer(sizeof(EnumState)));
    st->magic = ENUM_MAGIC;
    *state = st;
  }
  if (st->next >= keys->size()) return {NTE_NO_MORE_ITEMS, {}};
  const Key& k = (*keys)[st->next++];
  std::wstring name = widen(k.name), alg = widen(algorithm_name(k));
  // One block: the struct, then both strings (FreeBuffer releases it at once).
  size_t bytes = sizeof(NCryptKeyName) + (name.size() + 1 + alg.size() + 1) * sizeof(wchar_t);
  auto* kn = static_cast<NCryptKeyName*>(alloc_buffer(bytes));
  auto* p = reinterpret_cast<wchar_t*>(kn + 1);
  memcpy(p, name.c_str(), (name.size() + 1) * sizeof(wchar_t));
  kn->pszName = p;
  p += name.size() + 1;
  memcpy(p, alg.c_str(), (alg.size() + 1) * sizeof(wchar_t));
  kn->pszAlgid = p;
  kn->dwLegacyKeySpec = AT_SIGNATURE;
  kn->dwFlags = 0;
  *out = kn;
  return ok();
}

Failure sign_hash(NCRYPT_PROV_HANDLE hp, NCRYPT_KEY_HANDLE hk, VOID* padding, PBYTE hash, DWORD cb_hash, PBYTE sig,
                  DWORD cb_sig, DWORD* pcb, DWORD flags) {
  auto prov = find_provider(hp);
  if (!prov) return bad_provider();
  auto key = find_key_object(hk);
  if (!key) return bad_key();
  if (!pcb) return {NTE_INVALID_PARAMETER, "SignHash: pcbResult is NULL"};
  const Key& k = key->key;
  SignHashArgs a;
  a.hash = hash;
  a.hash_len = cb_hash;
  DWORD pad = flags & ~static_cast<DWORD>(NCRYPT_SILENT_FLAG);
  if (pad == BCRYPT_PAD_PKCS1 || pad == BCRYPT_PAD_PSS) {
    if (!padding) return {NTE_INVALID_PARAMETER, "SignHash: BCRYPT_PAD_* given without its padding info"};
    // Both padding infos start with pszAlgId (bcrypt.h).
    LPCWSTR alg = static_cast<BCRYPT_PKCS1_PADDING_INFO*>(padding)->pszAlgId;
    a.has_alg = alg != nullptr;
    a.alg_id = narrow(alg);
    if (pad == BCRYPT_PAD_PSS) {
      a.padding = Padding::Pss;
      a.salt_len = static_cast<BCRYPT_PSS_PADDING_INFO*>(padding)->cbSalt;
      if (!a.has_alg) return {NTE_INVALID_PARAMETER, "SignHash: BCRYPT_PSS_PADDING_INFO.pszAlgId is NULL"};
    } else {
      a.padding = Padding::Pkcs1;
    }
  } else if (pad != 0) {
    char f[16];
    snprintf(f, sizeof f, "0x%lx", static_cast<unsigned long>(flags));
    return {NTE_BAD_FLAGS, std::string("SignHash: dwFlags ") + f + " names a padding other than BCRYPT_PAD_PKCS1 / BCRYPT_PAD_PSS"};
  }
  SignPlan plan;
  Error e = plan_sign(k, a, plan);
  if (!e.ok()) return {e.code, e.message};
  // CNG's two-call convention: no buffer → the signature's size; a short one → NTE_BUFFER_TOO_SMALL.
  *pcb = static_cast<DWORD>(k.signature_len);
  if (!sig) return ok();
  if (cb_sig < k.signature_len)
    return {NTE_BUFFER_TOO_SMALL, "SignHash '" + k.name + "': the signature needs " + std::to_string(k.signature_len) + " bytes"};
  Status s = prov->client().sign(k.key_handle, plan.mechanism, plan.hash_alg, plan.mgf, plan.salt_len, plan.data.data(),
                                 plan.data.size(), sig, k.signature_len);
  if (!s.ok()) {
    *pcb = 0;
    return {status_for_rv(s.rv()), "SignHash '" + k.name + "': " + s.message()};
  }
  return ok();
}

}  // namespace sb::ksp
