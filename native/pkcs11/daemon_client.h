// Client side of the wire protocol (docs/protocol.md "Connection life"): a small pool of idle,
// greeted connections; one retry when a pooled connection turns out dead (design.md: a
// restarted daemon is picked up without reloading the module); custody of the PIN given at
// C_Login, sent with LOGIN on every new connection (protocol.md "LOGIN"). The transport is
// connection.h, the settings client_config.h, starting a daemon autostart.h.
// Never holds the module state lock: callers do I/O with the lock released.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../common/messages.h"
#include "client_config.h"
#include "status.h"

namespace sb {

// Longest PIN the module keeps (CK_TOKEN_INFO.ulMaxPinLen reports the same).
constexpr size_t MAX_PIN = 255;

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
  // `per_use_auth`: the key has CKA_ALWAYS_AUTHENTICATE, so CKR_USER_NOT_LOGGED_IN means "no
  // authorisation held" and the notice is the daemon's own sentence (protocol.md "AUTHORIZE").
  Status sign(const proto::Bytes& key_handle, uint64_t mechanism, uint64_t hash_alg, uint64_t mgf,
              uint32_t salt_len, const uint8_t* data, size_t data_len, uint8_t* out, size_t sig_len,
              bool per_use_auth = false);

  // One LOGIN round trip (protocol.md "LOGIN"). On success the PIN is kept and sent again after
  // HELLO on every new connection; the daemon's rv (CKR_PIN_INCORRECT, CKR_PIN_LOCKED, …)
  // comes back as is.
  Status login(uint32_t slot_id, uint64_t user_type, const uint8_t* pin, size_t pin_len);
  // Wipes the kept PIN (C_Logout of the last slot, C_Finalize) and drops idle connections
  // that were logged in with it.
  void forget_pin();
  // One AUTHORIZE round trip (protocol.md "AUTHORIZE"): the context-specific login's OTP/PIN for
  // the key of the active signing operation. Never kept; wiped from the frame buffer. On success
  // `signatures` is how many signatures the authorisation allows.
  Status authorize(const proto::Bytes& key_handle, const uint8_t* pin, size_t pin_len, uint32_t& signatures);
  // Fork child only (single-threaded, locks may be held by threads that do not exist): wipes
  // the PIN without locking.
  void wipe_pin_in_child();

  const ClientConfig& config() const { return cfg_; }

 private:
  template <class Fn>
  Status with_connection(int timeout_ms, Fn&& round_trip);
  Status relogin(Connection& c, int timeout_ms, bool& stale);
  Result<std::unique_ptr<Connection>> connect_fresh();
  Result<std::unique_ptr<Connection>> connect_or_start();
  Result<std::unique_ptr<Connection>> connect_greet(bool* absent, int hello_timeout_ms);
  std::unique_ptr<Connection> take_idle();
  void give_back(std::unique_ptr<Connection> c);
  void drop_idle();

  ClientConfig cfg_;
  std::mutex mu_;  // guards idle_ and the PIN; never held during I/O
  std::vector<std::unique_ptr<Connection>> idle_;
  // The PIN in a fixed buffer, so the fork child can wipe it whatever state the parent was in.
  uint8_t pin_[MAX_PIN] = {};
  size_t pin_len_ = 0;
  uint64_t pin_gen_ = 0;       // 0: no PIN kept; else the login generation of pin_
  uint64_t gen_counter_ = 0;   // source of login generations
  uint32_t pin_slot_ = 0;      // slot_id of the C_Login that kept pin_
  std::mutex autostart_mu_;    // one autostart attempt at a time in this process
  bool autostart_failed_ = false;  // guarded by autostart_mu_: do not start a broken daemon again
};

}  // namespace sb
