// The KSP's objects behind CNG handles: a provider (the daemon client and the keys it offers)
// and an opened key. A handle is the object's address, looked up in a registry before use, so a
// stale or foreign handle is NTE_INVALID_HANDLE rather than a crash in the host (signtool).
#pragma once
#include <windows.h>
#include <ncrypt.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ksp_core.h"

namespace sb {
class DaemonClient;
}

namespace sb::ksp {

extern const wchar_t* const PROVIDER_NAME;  // "Signbridge Key Storage Provider"

// A SECURITY_STATUS with the sentence for the log (ksp_log.h).
struct Failure {
  SECURITY_STATUS status;
  std::string message;
};

class Provider {
 public:
  Provider();
  // The daemon's signing keys, fetched with one GET_INVENTORY on first use (design.md: the
  // inventory is cached); `refresh` fetches again (a key name not seen yet).
  bool keys(bool refresh, std::shared_ptr<const std::vector<Key>>& out, Failure& err);
  DaemonClient& client() { return *client_; }

 private:
  std::shared_ptr<DaemonClient> client_;
  std::mutex mu_;
  std::shared_ptr<const std::vector<Key>> keys_;
};

struct KeyObject {
  std::shared_ptr<Provider> provider;
  Key key;
};

// Handle registry: add returns the handle; find returns nullptr for unknown handles.
NCRYPT_PROV_HANDLE add_provider(std::shared_ptr<Provider> p);
std::shared_ptr<Provider> find_provider(NCRYPT_PROV_HANDLE h);
bool remove_provider(NCRYPT_PROV_HANDLE h);
NCRYPT_KEY_HANDLE add_key(std::shared_ptr<KeyObject> k);
std::shared_ptr<KeyObject> find_key_object(NCRYPT_KEY_HANDLE h);
bool remove_key(NCRYPT_KEY_HANDLE h);

// Buffers handed to the caller (EnumKeys' names and state), released by FreeBuffer.
void* alloc_buffer(size_t n);
bool free_buffer(void* p);

std::string narrow(LPCWSTR w);  // UTF-16 → UTF-8 ("" for NULL)
std::wstring widen(const std::string& s);

}  // namespace sb::ksp
