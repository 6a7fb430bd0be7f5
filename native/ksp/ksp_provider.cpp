#include "ksp_provider.h"

#include <cstdlib>
#include <unordered_map>
#include <unordered_set>

#include "../pkcs11/client_config.h"
#include "../pkcs11/daemon_client.h"

namespace sb::ksp {

const wchar_t* const PROVIDER_NAME = L"Signbridge Key Storage Provider";

namespace {

std::mutex registry_mu;
std::unordered_map<ULONG_PTR, std::shared_ptr<Provider>> providers;
std::unordered_map<ULONG_PTR, std::shared_ptr<KeyObject>> keys_open;

// A handle is the object's address; the map keeps the object alive until the handle is freed,
// and a stale or foreign handle finds nothing instead of being dereferenced.
template <typename T>
ULONG_PTR registry_add(std::unordered_map<ULONG_PTR, std::shared_ptr<T>>& map, std::shared_ptr<T> obj) {
  auto h = reinterpret_cast<ULONG_PTR>(obj.get());
  std::lock_guard<std::mutex> g(registry_mu);
  map[h] = std::move(obj);
  return h;
}

template <typename T>
std::shared_ptr<T> registry_find(std::unordered_map<ULONG_PTR, std::shared_ptr<T>>& map, ULONG_PTR h) {
  std::lock_guard<std::mutex> g(registry_mu);
  auto it = map.find(h);
  return it == map.end() ? nullptr : it->second;
}

template <typename T>
bool registry_remove(std::unordered_map<ULONG_PTR, std::shared_ptr<T>>& map, ULONG_PTR h) {
  std::lock_guard<std::mutex> g(registry_mu);
  return map.erase(h) == 1;
}
std::unordered_set<void*> buffers;

// One daemon client per process, shared by every provider handle: its connection pool and the
// settings read once from the environment (design.md "Environment"), as in the module.
std::shared_ptr<DaemonClient> shared_client() {
  static std::mutex mu;
  static std::shared_ptr<DaemonClient> client;
  std::lock_guard<std::mutex> g(mu);
  if (!client) client = std::make_shared<DaemonClient>(config_from_env());
  return client;
}

}  // namespace

Provider::Provider() : client_(shared_client()) {}

bool Provider::keys(bool refresh, std::shared_ptr<const std::vector<Key>>& out, Failure& err) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (keys_ && !refresh) {
      out = keys_;
      return true;
    }
  }
  // The round trip runs without the lock (daemon_client.h: callers do I/O unlocked).
  Result<proto::InventoryReply> inv = client_->get_inventory();
  if (!inv.ok()) {
    err = {status_for_rv(inv.status().rv()),
           "GET_INVENTORY failed: " + inv.status().message() +
               " (is `signbridge daemon` running as this user? `signbridge doctor` checks the pipe)"};
    return false;
  }
  auto fresh = std::make_shared<const std::vector<Key>>(keys_from_inventory(*inv));
  std::lock_guard<std::mutex> g(mu_);
  keys_ = fresh;
  out = fresh;
  return true;
}

NCRYPT_PROV_HANDLE add_provider(std::shared_ptr<Provider> p) { return registry_add(providers, std::move(p)); }
std::shared_ptr<Provider> find_provider(NCRYPT_PROV_HANDLE h) { return registry_find(providers, h); }
bool remove_provider(NCRYPT_PROV_HANDLE h) { return registry_remove(providers, h); }

NCRYPT_KEY_HANDLE add_key(std::shared_ptr<KeyObject> k) { return registry_add(keys_open, std::move(k)); }
std::shared_ptr<KeyObject> find_key_object(NCRYPT_KEY_HANDLE h) { return registry_find(keys_open, h); }
bool remove_key(NCRYPT_KEY_HANDLE h) { return registry_remove(keys_open, h); }

void* alloc_buffer(size_t n) {
  void* p = calloc(1, n);
  if (!p) throw std::bad_alloc();
  std::lock_guard<std::mutex> g(registry_mu);
  buffers.insert(p);
  return p;
}

bool free_buffer(void* p) {
  {
    std::lock_guard<std::mutex> g(registry_mu);
    if (buffers.erase(p) != 1) return false;
  }
  free(p);
  return true;
}

std::string narrow(LPCWSTR w) {
  if (!w) return {};
  int n = WideCharToMultiByte(CP_UTF8, 0, w, -1, nullptr, 0, nullptr, nullptr);
  if (n <= 1) return {};
  std::string s(static_cast<size_t>(n), '\0');
  WideCharToMultiByte(CP_UTF8, 0, w, -1, &s[0], n, nullptr, nullptr);
  s.resize(static_cast<size_t>(n - 1));
  return s;
}

std::wstring widen(const std::string& s) {
  if (s.empty()) return {};
  int n = MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), nullptr, 0);
  std::wstring w(static_cast<size_t>(n), L'\0');
  MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), &w[0], n);
  return w;
}

}  // namespace sb::ksp
