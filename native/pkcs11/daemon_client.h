// Client side of the wire protocol (docs/protocol.md "Connection life"): a small pool of idle,
// greeted connections; poll-based deadlines; one retry when a pooled connection turns out dead
// (design.md: a restarted daemon is picked up without reloading the module).
// Never holds the module state lock: callers do I/O with the lock released.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../common/messages.h"
#include "status.h"

namespace sb {

struct ClientConfig {
  std::string socket_path;
  int sign_timeout_ms = 60000;  // SIGNBRIDGE_TIMEOUT_MS
  int meta_timeout_ms = 10000;  // HELLO, GET_INVENTORY: min(SIGNBRIDGE_TIMEOUT_MS, 10000)
};

// design.md "Environment": SIGNBRIDGE_SOCKET, else $XDG_RUNTIME_DIR/signbridge/signbridge.sock,
// else /tmp/signbridge-<uid>/signbridge.sock.
ClientConfig config_from_env();

class Connection;

class DaemonClient {
 public:
  explicit DaemonClient(ClientConfig cfg);
  ~DaemonClient();
  DaemonClient(const DaemonClient&) = delete;
  DaemonClient& operator=(const DaemonClient&) = delete;

  Result<proto::InventoryReply> get_inventory();

  // One SIGN round trip. On success the signature (exactly `sig_len` bytes) is in `out`.
  // Daemon error replies come back with their rv; transport failures as CKR_DEVICE_ERROR.
  Status sign(const proto::Bytes& key_handle, uint64_t mechanism, uint64_t hash_alg, uint64_t mgf,
              uint32_t salt_len, const uint8_t* data, size_t data_len, uint8_t* out, size_t sig_len);

  const ClientConfig& config() const { return cfg_; }

 private:
  template <class Fn>
  Status with_connection(int timeout_ms, Fn&& round_trip);
  Result<std::unique_ptr<Connection>> connect_fresh();
  std::unique_ptr<Connection> take_idle();
  void give_back(std::unique_ptr<Connection> c);
  void drop_idle();

  ClientConfig cfg_;
  std::mutex mu_;  // guards idle_ only; never held during I/O
  std::vector<std::unique_ptr<Connection>> idle_;
};

}  // namespace sb
