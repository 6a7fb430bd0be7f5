// Messages of protocol version 1 (docs/protocol.md "Call table"). The structs (HelloRequest,
// InventoryReply, SignRequestView …) and their body codec come from protocol.def (records.h,
// codec.h); this file adds the frame level: the frame decoder checks the call table, the kind,
// the reply envelope and that the body is consumed exactly.
#pragma once
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "codec.h"
#include "framing.h"
#include "protocol.h"
#include "records.h"
#include "wire.h"

namespace sb::proto {

// Reply envelope (protocol.md "Reply envelope"): rv, then message when rv != 0.
struct ReplyStatus {
  uint32_t rv = 0;
  std::string message;
};

// A whole frame, decoded. For replies, `status` holds the envelope and `body` is monostate
// when rv != 0. The alternatives are every call's request and reply record (protocol.def).
using Body = std::variant<std::monostate
#define SB_CALL(code, NAME, Id, Req, Rep) , Req, Rep
#include "protocol_def_open.h"
#include "protocol.def"
#include "protocol_def_close.h"
                          >;
struct Frame {
  Call call = Call::Hello;
  Kind kind = Kind::Request;
  uint32_t id = 0;
  ReplyStatus status;
  Body body;
};

// `p`/`n` must hold exactly one frame. False (with `err`) on any malformation.
bool decode_frame(const uint8_t* p, size_t n, Frame& f, std::string& err);
// Appends the frame's bytes to `out`.
void encode_frame(std::vector<uint8_t>& out, const Frame& f);

// Encoders for a request frame / a reply frame in one call.
template <class T>
void encode_request(std::vector<uint8_t>& out, Call call, uint32_t id, const T& m) {
  size_t start = begin_frame(out, call, Kind::Request, id);
  wire::Writer w(out);
  write_body(w, m);
  finish_frame(out, start);
}
template <class T>
void encode_ok_reply(std::vector<uint8_t>& out, Call call, uint32_t id, const T& m) {
  size_t start = begin_frame(out, call, Kind::Reply, id);
  wire::Writer w(out);
  w.u32(0);
  write_body(w, m);
  finish_frame(out, start);
}
void encode_error_reply(std::vector<uint8_t>& out, Call call, uint32_t id, uint32_t rv,
                        const std::string& message);

// Decodes a reply body's envelope and, when rv == 0, its fields into `m`; checks the body is
// consumed exactly. Used by the module on its hot path (reuses m's buffers).
template <class T>
bool read_reply_body(const uint8_t* body, size_t n, ReplyStatus& st, T& m, std::string& err) {
  wire::Reader r(body, n);
  st.rv = r.u32();
  st.message.clear();
  if (r.ok() && st.rv != 0) r.str(st.message);
  else read_body(r, m);
  if (!r.finish()) {
    err = r.error();
    return false;
  }
  return true;
}

}  // namespace sb::proto
