#include "messages.h"

namespace sb::proto {

void encode_error_reply(std::vector<uint8_t>& out, Call call, uint32_t id, uint32_t rv,
                        const std::string& message) {
  size_t start = begin_frame(out, call, Kind::Reply, id);
  wire::Writer w(out);
  w.u32(rv);
  w.str(message);
  finish_frame(out, start);
}

template <class T>
static void decode_as(wire::Reader& r, Frame& f) {
  T m;
  read_body(r, m);
  f.body = std::move(m);
}

bool decode_frame(const uint8_t* p, size_t n, Frame& f, std::string& err) {
  size_t size = 0;
  const char* why = "";
  switch (scan_frame(p, n, &size, &why)) {
    case FrameStatus::NeedMore: err = "truncated frame"; return false;
    case FrameStatus::Bad: err = why; return false;
    case FrameStatus::Complete: break;
  }
  if (size != n) {
    err = "bytes after the end of the frame";
    return false;
  }
  FrameHeader h = read_header(p);
  const CallInfo* ci = find_call(h.call);
  if (!ci) {
    err = "unknown call code";
    return false;
  }
  if (h.kind != KIND_REQUEST && h.kind != KIND_REPLY) {
    err = "unknown frame kind";
    return false;
  }
  f.call = ci->call;
  f.kind = static_cast<Kind>(h.kind);
  f.id = h.id;
  f.status = {};
  f.body = std::monostate{};
  wire::Reader r(p + HEADER_SIZE, n - HEADER_SIZE);
  bool request = f.kind == Kind::Request;
  if (!request) {
    f.status.rv = r.u32();
    if (r.ok() && f.status.rv != 0) r.str(f.status.message);
  }
  if (request || (r.ok() && f.status.rv == 0)) {
    // The call table picks the body record (protocol.def SB_CALL).
    switch (f.call) {
#define SB_CALL(code, NAME, Id, Req, Rep) \
  case Call::Id: request ? decode_as<Req>(r, f) : decode_as<Rep>(r, f); break;
#include "protocol_def_open.h"
#include "protocol.def"
#include "protocol_def_close.h"
    }
  }
  if (!r.finish()) {
    err = r.error();
    return false;
  }
  return true;
}

void encode_frame(std::vector<uint8_t>& out, const Frame& f) {
  size_t start = begin_frame(out, f.call, f.kind, f.id);
  wire::Writer w(out);
  if (f.kind == Kind::Reply) {
    w.u32(f.status.rv);
    if (f.status.rv != 0) w.str(f.status.message);
  }
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (!std::is_same_v<T, std::monostate>) write_body(w, m);
      },
      f.body);
  finish_frame(out, start);
}

}  // namespace sb::proto
