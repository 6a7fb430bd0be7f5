// Messages of protocol version 1 (docs/protocol.md "Call table") and their codec.
// Body decoders read from a bounded Reader; the frame-level decode checks the call table,
// the kind, the reply envelope and that the body is consumed exactly.
#pragma once
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "framing.h"
#include "protocol.h"
#include "wire.h"

namespace sb::proto {

using Bytes = std::vector<uint8_t>;

struct HelloRequest {
  uint32_t magic = HELLO_MAGIC;
  uint16_t min_version = VERSION_MIN;
  uint16_t max_version = VERSION_MAX;
  std::string client;
};
struct HelloReply {
  uint16_t version = 0;
  std::string server;
};
struct InventoryRequest {};  // empty body
struct Mechanism {
  uint64_t type = 0;
  uint32_t min_key_size = 0;
  uint32_t max_key_size = 0;
  uint32_t flags = 0;
};
struct Attribute {
  uint64_t type = 0;
  Bytes value;
};
struct Object {
  Bytes key_handle;
  std::vector<Attribute> attributes;
};
struct Slot {
  uint32_t slot_id = 0;
  std::string slot_description, manufacturer, token_label, token_model, token_serial;
  uint32_t token_flags = 0;
  std::vector<Mechanism> mechanisms;
  std::vector<Object> objects;
};
struct InventoryReply {
  uint64_t generation = 0;
  std::vector<Slot> slots;
};
struct SignRequest {
  Bytes key_handle;
  uint64_t mechanism = 0, hash_alg = 0, mgf = 0;
  uint32_t salt_len = 0;
  Bytes data;
};
struct SignReply {
  Bytes signature;
};
// protocol.md "LOGIN": the pin is a secret; whoever holds one of these wipes it.
struct LoginRequest {
  uint32_t slot_id = 0;
  uint64_t user_type = 0;
  Bytes pin;
};
struct LoginReply {};  // rv only

// Zero-copy forms for the module's signing path: the request is encoded straight from the
// caller's buffers and the signature is read in place from the connection's buffer.
struct SignRequestView {
  wire::ByteView key_handle;
  uint64_t mechanism = 0, hash_alg = 0, mgf = 0;
  uint32_t salt_len = 0;
  wire::ByteView data;
};
struct SignReplyView {
  wire::ByteView signature;
};
// The module encodes LOGIN straight from its own PIN buffer (no extra copy of the secret).
struct LoginRequestView {
  uint32_t slot_id = 0;
  uint64_t user_type = 0;
  wire::ByteView pin;
};

// Reply envelope (protocol.md "Reply envelope"): rv, then message when rv != 0.
struct ReplyStatus {
  uint32_t rv = 0;
  std::string message;
};

// Body encoders/decoders (no header, no envelope).
void write_body(wire::Writer& w, const HelloRequest& m);
void write_body(wire::Writer& w, const HelloReply& m);
void write_body(wire::Writer& w, const InventoryRequest& m);
void write_body(wire::Writer& w, const InventoryReply& m);
void write_body(wire::Writer& w, const SignRequest& m);
void write_body(wire::Writer& w, const SignReply& m);
void write_body(wire::Writer& w, const SignRequestView& m);
void write_body(wire::Writer& w, const LoginRequest& m);
void write_body(wire::Writer& w, const LoginRequestView& m);
void write_body(wire::Writer& w, const LoginReply& m);
void read_body(wire::Reader& r, HelloRequest& m);
void read_body(wire::Reader& r, HelloReply& m);
void read_body(wire::Reader& r, InventoryRequest& m);
void read_body(wire::Reader& r, InventoryReply& m);
void read_body(wire::Reader& r, SignRequest& m);
void read_body(wire::Reader& r, SignReply& m);
void read_body(wire::Reader& r, SignReplyView& m);
void read_body(wire::Reader& r, LoginRequest& m);
void read_body(wire::Reader& r, LoginReply& m);

// A whole frame, decoded. For replies, `status` holds the envelope and `body` is monostate
// when rv != 0.
using Body = std::variant<std::monostate, HelloRequest, HelloReply, InventoryRequest,
                          InventoryReply, SignRequest, SignReply, LoginRequest, LoginReply>;
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
