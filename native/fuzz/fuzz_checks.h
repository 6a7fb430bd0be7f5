// Properties of the C++ codec that must hold for ANY input bytes (docs/hardening/hostile-input.md).
// Shared by the libFuzzer target (a violated property aborts → libFuzzer reports a crash) and
// sb_codec_harness (prints the violation). Nothing here may trust the input.
#pragma once
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "../common/framing.h"
#include "../common/messages.h"
#include "../pkcs11/inventory.h"

namespace sb::fuzz {

struct FrameVerdict {
  bool ok = false;
  std::string error;      // decode_frame's reason when !ok
  std::string violation;  // non-empty: a property failed (a bug, whatever the input)
  proto::Frame frame;
};

// The module decodes replies on its hot path with read_reply_body<T> on the body alone
// (daemon_client.cpp); it must agree with the frame decoder on every reply.
template <class T>
bool reply_body_ok(const uint8_t* body, size_t n) {
  proto::ReplyStatus st;
  T m;
  std::string err;
  return proto::read_reply_body(body, n, st, m, err);
}

// The record the module decodes a reply into: SIGN's signature is read in place (SignReplyView).
template <class Rep> struct HotReply { using type = Rep; };
template <> struct HotReply<proto::SignReply> { using type = proto::SignReplyView; };
template <class Rep> using hot_reply_t = typename HotReply<Rep>::type;

// The module's model built from a decoded inventory (inventory.cpp): handles are never 0,
// never shared, and a rebuild with the previous inventory keeps every handle (protocol.md
// "object": stable handles).
inline std::string check_inventory(const proto::InventoryReply& reply) {
  CK_OBJECT_HANDLE next = 1;
  proto::InventoryReply copy = reply;
  auto first = build_inventory(std::move(copy), nullptr, next);
  if (!first.ok()) return {};  // rejected (duplicate slot, bad CK_ULONG): fine
  size_t total = 0;
  for (const auto& s : reply.slots) total += s.objects.size();
  const Inventory& inv = **first;
  if (inv.objects.size() != total) return "inventory: an object handle was given twice";
  std::set<CK_OBJECT_HANDLE> handles;
  for (const auto& [h, o] : inv.objects) {
    if (h == CK_INVALID_HANDLE) return "inventory: object handle 0";
    if (o.handle != h) return "inventory: map key differs from the object's handle";
    handles.insert(h);
  }
  proto::InventoryReply again = reply;
  auto second = build_inventory(std::move(again), &inv, next);
  if (!second.ok()) return "inventory: accepted once, rejected the second time";
  std::set<CK_OBJECT_HANDLE> kept;
  for (const auto& [h, o] : (*second)->objects) kept.insert(h);
  if (kept != handles) return "inventory: re-fetching the same inventory changed object handles";
  return {};
}

inline FrameVerdict check_frame(const uint8_t* p, size_t n) {
  FrameVerdict v;
  v.ok = proto::decode_frame(p, n, v.frame, v.error);

  // Framing: a complete frame is "need more" at every shorter prefix once its length is valid.
  size_t size = 0;
  const char* why = "";
  proto::FrameStatus fs = proto::scan_frame(p, n, &size, &why);
  if (fs == proto::FrameStatus::Complete) {
    if (size < proto::HEADER_SIZE || size > proto::MAX_FRAME || size > n) {
      v.violation = "scan_frame: Complete with an impossible size";
      return v;
    }
    for (size_t k = 0; k < size; k++) {
      proto::FrameStatus pf = proto::scan_frame(p, k, nullptr, nullptr);
      if (pf != proto::FrameStatus::NeedMore) {
        v.violation = "scan_frame: a prefix of a complete frame is not NeedMore";
        return v;
      }
    }
  }
  if (v.ok && (fs != proto::FrameStatus::Complete || size != n)) {
    v.violation = "decode_frame accepted bytes scan_frame does not see as one frame";
    return v;
  }

  // The module's reply path agrees with decode_frame (only when the header itself is sound).
  if (fs == proto::FrameStatus::Complete && size == n && p[5] == proto::KIND_REPLY && proto::find_call(p[4])) {
    const uint8_t* body = p + proto::HEADER_SIZE;
    size_t bn = n - proto::HEADER_SIZE;
    bool hot = false;
    switch (static_cast<proto::Call>(p[4])) {
      // Every call's reply record from the call table (protocol.def); SIGN as the module reads
      // it, in place.
#define SB_CALL(code, NAME, Id, Req, Rep) \
  case proto::Call::Id: hot = reply_body_ok<hot_reply_t<proto::Rep>>(body, bn); break;
#include "../common/protocol_def_open.h"
#include "../common/protocol.def"
#include "../common/protocol_def_close.h"
    }
    if (hot != v.ok) {
      v.violation = std::string("read_reply_body and decode_frame disagree on a ") +
                    proto::find_call(p[4])->name + " reply";
      return v;
    }
  }

  if (!v.ok) {
    if (v.error.empty()) v.violation = "rejected without a reason";
    return v;
  }
  // Canonical encoding: whatever is accepted re-encodes to the same bytes.
  std::vector<uint8_t> again;
  proto::encode_frame(again, v.frame);
  if (again.size() != n || memcmp(again.data(), p, n) != 0) {
    v.violation = "an accepted frame does not re-encode to the same bytes";
    return v;
  }
  if (v.frame.kind == proto::Kind::Reply && v.frame.status.rv == 0) {
    if (auto* inv = std::get_if<proto::InventoryReply>(&v.frame.body)) v.violation = check_inventory(*inv);
  }
  return v;
}

// A byte stream as the module's reader sees it (daemon_client.cpp round_trip): frames one after
// another. Returns the sizes of the complete frames and how the stream ended.
struct StreamVerdict {
  std::vector<size_t> frames;
  proto::FrameStatus end = proto::FrameStatus::NeedMore;
};
inline StreamVerdict scan_stream(const uint8_t* p, size_t n) {
  StreamVerdict v;
  size_t off = 0;
  for (;;) {
    size_t size = 0;
    proto::FrameStatus fs = proto::scan_frame(p + off, n - off, &size, nullptr);
    if (fs != proto::FrameStatus::Complete) {
      v.end = fs;
      return v;
    }
    v.frames.push_back(size);
    off += size;
  }
}

}  // namespace sb::fuzz
