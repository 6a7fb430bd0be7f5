// The transport: one connection to the daemon's unix socket — connect, poll-based deadline I/O
// and the framing of one round trip (docs/protocol.md "Framing", "Connection life").
// The only file of the client that makes socket calls: a Windows named-pipe twin goes beside it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../common/protocol.h"
#include "status.h"

namespace sb {

// Monotonic milliseconds, for deadlines.
int64_t now_ms();
// Waits until fd is ready for `events` (poll flags) or the deadline passes: 0 ready,
// ETIMEDOUT, or an errno.
int wait_fd(int fd, short events, int64_t deadline);

// This process's id (HELLO names the client with it) and its user's id (for error text).
long process_id();
long user_id();

// design.md "Environment": $XDG_RUNTIME_DIR/signbridge/signbridge.sock, else
// /tmp/signbridge-<uid>/signbridge.sock.
std::string default_socket_path();

// One connection with its reusable buffers (no allocation per signature once warm).
class Connection {
 public:
  // Connects within timeout_ms. `absent` is set when nobody listens there at all (no socket
  // file, or refused): the case autostart may fix. `default_path`: the path is the built-in
  // default, not one the user named.
  static Result<std::unique_ptr<Connection>> open(const std::string& path, bool default_path, int timeout_ms,
                                                  bool* absent);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Sends wbuf and reads exactly one reply frame for (call, id). On success body/body_len point
  // into the connection's read buffer until the next round trip. `stale` is set when the
  // failure means "the peer was already gone" (nothing of the reply arrived), which is worth
  // one retry on a fresh connection. Any transport or framing failure sets `broken`.
  Status round_trip(proto::Call call, uint32_t id, int timeout_ms, const uint8_t*& body, size_t& body_len,
                    bool& stale);
  const std::string& path() const { return path_; }

  std::vector<uint8_t> wbuf;
  uint32_t next_id = 1;
  bool pooled = false;    // came from the idle pool (so a failure may just mean "stale")
  bool broken = false;    // transport or framing failure: out of step, must be closed
  uint64_t auth_gen = 0;  // login generation this connection sent LOGIN for (0: none)

 private:
  Connection(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  Status send_all(const char* call, int timeout_ms, int64_t deadline, bool& stale);
  Status timeout(const char* call, int ms);
  Status io_error(const char* op, int e);
  Status bad_reply(const char* why);

  int fd_;
  std::string path_;
  std::vector<uint8_t> rbuf_;
};

}  // namespace sb
