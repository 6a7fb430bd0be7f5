// The platform-independent half of connection.h: one framed round trip over the platform's
// stream (docs/protocol.md "Framing"); the stream itself is transport_posix.cpp /
// transport_win.cpp.
#include "connection.h"

#include "../common/framing.h"

namespace sb {

Status Connection::round_trip(proto::Call call, uint32_t id, int timeout_ms, const uint8_t*& body, size_t& body_len,
                              bool& stale) {
  stale = false;
  int64_t deadline = now_ms() + timeout_ms;
  const char* name = proto::find_call(static_cast<uint8_t>(call))->name;
  IoResult w = write_all(deadline);
  if (w.io == Io::Timeout) return timeout(name, timeout_ms);
  if (w.io != Io::Ok) {
    stale = w.peer_gone;
    return io_error("send", w.why);
  }
  size_t have = 0;
  if (rbuf_.size() < 4096) rbuf_.resize(4096);
  for (;;) {
    size_t frame = 0;
    const char* why = "";
    proto::FrameStatus fs = proto::scan_frame(rbuf_.data(), have, &frame, &why);
    if (fs == proto::FrameStatus::Bad) return bad_reply(why);
    if (fs == proto::FrameStatus::Complete) {
      if (have != frame) return bad_reply("bytes after the reply frame");
      proto::FrameHeader h = proto::read_header(rbuf_.data());
      if (h.call != static_cast<uint8_t>(call) || h.kind != static_cast<uint8_t>(proto::Kind::Reply) || h.id != id)
        return bad_reply("reply does not match the request (call, kind or id)");
      body = rbuf_.data() + proto::HEADER_SIZE;
      body_len = frame - proto::HEADER_SIZE;
      return Status::Ok();
    }
    // Need more: grow to the announced frame size (bounded by MAX_FRAME via scan_frame).
    if (have >= 4) {
      size_t total = size_t(rbuf_[0] | rbuf_[1] << 8 | rbuf_[2] << 16 | uint32_t(rbuf_[3]) << 24) + 4;
      if (rbuf_.size() < total) rbuf_.resize(total);
    }
    if (have == rbuf_.size()) rbuf_.resize(rbuf_.size() * 2);
    size_t n = 0;
    IoResult r = read_some(rbuf_.data() + have, rbuf_.size() - have, deadline, n);
    if (r.io == Io::Ok) {
      have += n;
      continue;
    }
    if (r.io == Io::Closed) {
      stale = have == 0;
      broken = true;
      return Status(CKR_DEVICE_ERROR, "the signbridge daemon at " + path_ + " closed the connection during " + name +
                                          (have ? " (partial reply)" : ""));
    }
    if (r.io == Io::Timeout) return timeout(name, timeout_ms);
    stale = have == 0 && r.peer_gone;
    return io_error("recv", r.why);
  }
}

Status Connection::timeout(const char* call, int ms) {
  broken = true;
  return Status(CKR_DEVICE_ERROR, "the signbridge daemon at " + path_ + " did not answer " + call + " within " +
                                      std::to_string(ms) + " ms; check that it is healthy (SIGNBRIDGE_TIMEOUT_MS sets the limit)");
}

Status Connection::io_error(const char* op, const std::string& why) {
  broken = true;
  return Status(CKR_DEVICE_ERROR, std::string(op) + " to the signbridge daemon at " + path_ + " failed: " + why);
}

Status Connection::bad_reply(const char* why) {
  broken = true;
  return Status(CKR_DEVICE_ERROR, "bad reply from the signbridge daemon at " + path_ + ": " + why +
                                      "; are the daemon and the module the same version?");
}

}  // namespace sb
