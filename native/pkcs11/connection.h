// The transport: one connection to the daemon — the framing of one round trip (docs/protocol.md
// "Framing", "Connection life") over a byte stream that one platform file provides:
// transport_posix.cpp (unix socket, poll deadlines) or transport_win.cpp (named pipe, overlapped
// I/O with the same deadlines). Only those two files make socket or pipe calls.
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
#ifndef _WIN32
// Waits until fd is ready for `events` (poll flags) or the deadline passes: 0 ready,
// ETIMEDOUT, or an errno.
int wait_fd(int fd, short events, int64_t deadline);
#endif

// This process's id (HELLO names the client with it) and its user, for error text
// ("uid 1000" on POSIX, "user alice" on Windows) and the fix that names it ("1000" / "alice").
long process_id();
std::string user_label();
std::string user_for_flag();

// design.md "Environment": $XDG_RUNTIME_DIR/signbridge/signbridge.sock, else
// /tmp/signbridge-<uid>/signbridge.sock; on Windows the per-user pipe
// \\.\pipe\signbridge-<user name> (docs/windows.md).
std::string default_socket_path();

// How one transport call ended (the platform file fills `why` with the OS's words).
enum class Io { Ok, Closed, Timeout, Failed };
struct IoResult {
  Io io = Io::Ok;
  std::string why;
  bool peer_gone = false;  // reset / broken pipe: the peer was gone before we wrote or read a byte
};
struct Transport;  // the platform's stream (transport_posix.cpp / transport_win.cpp)

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
  Connection(std::unique_ptr<Transport> t, std::string path);
  // Platform file: writes all of wbuf, or reads at least one byte (Closed: the peer closed).
  IoResult write_all(int64_t deadline);
  IoResult read_some(uint8_t* p, size_t cap, int64_t deadline, size_t& got);
  Status timeout(const char* call, int ms);
  Status io_error(const char* op, const std::string& why);
  Status bad_reply(const char* why);

  std::unique_ptr<Transport> t_;
  std::string path_;
  std::vector<uint8_t> rbuf_;
};

}  // namespace sb
