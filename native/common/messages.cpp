#include "messages.h"

namespace sb::proto {

// Smallest encoded size of each array item, for Reader::count (protocol.md "array<T>").
constexpr size_t MIN_SLOT = 4 + 5 * 4 + 4 + 4 + 4;
constexpr size_t MIN_MECHANISM = 8 + 4 + 4 + 4;
constexpr size_t MIN_OBJECT = 4 + 4;
constexpr size_t MIN_ATTRIBUTE = 8 + 4;

void write_body(wire::Writer& w, const HelloRequest& m) {
  w.u32(m.magic);
  w.u16(m.min_version);
  w.u16(m.max_version);
  w.str(m.client);
}
void read_body(wire::Reader& r, HelloRequest& m) {
  m.magic = r.u32();
  if (r.ok() && m.magic != HELLO_MAGIC) r.fail("wrong HELLO magic");
  m.min_version = r.u16();
  m.max_version = r.u16();
  r.str(m.client);
}

void write_body(wire::Writer& w, const HelloReply& m) {
  w.u16(m.version);
  w.str(m.server);
}
void read_body(wire::Reader& r, HelloReply& m) {
  m.version = r.u16();
  r.str(m.server);
}

void write_body(wire::Writer&, const InventoryRequest&) {}
void read_body(wire::Reader&, InventoryRequest&) {}

void write_body(wire::Writer& w, const InventoryReply& m) {
  w.u64(m.generation);
  w.u32(static_cast<uint32_t>(m.slots.size()));
  for (const Slot& s : m.slots) {
    w.u32(s.slot_id);
    w.str(s.slot_description);
    w.str(s.manufacturer);
    w.str(s.token_label);
    w.str(s.token_model);
    w.str(s.token_serial);
    w.u32(s.token_flags);
    w.u32(static_cast<uint32_t>(s.mechanisms.size()));
    for (const Mechanism& mech : s.mechanisms) {
      w.u64(mech.type);
      w.u32(mech.min_key_size);
      w.u32(mech.max_key_size);
      w.u32(mech.flags);
    }
    w.u32(static_cast<uint32_t>(s.objects.size()));
    for (const Object& o : s.objects) {
      w.bytes(o.key_handle);
      w.u32(static_cast<uint32_t>(o.attributes.size()));
      for (const Attribute& a : o.attributes) {
        w.u64(a.type);
        w.bytes(a.value);
      }
    }
  }
}
void read_body(wire::Reader& r, InventoryReply& m) {
  m.generation = r.u64();
  uint32_t nslots = r.count(MIN_SLOT);
  m.slots.resize(nslots);
  for (Slot& s : m.slots) {
    s.slot_id = r.u32();
    r.str(s.slot_description);
    r.str(s.manufacturer);
    r.str(s.token_label);
    r.str(s.token_model);
    r.str(s.token_serial);
    s.token_flags = r.u32();
    s.mechanisms.resize(r.count(MIN_MECHANISM));
    for (Mechanism& mech : s.mechanisms) {
      mech.type = r.u64();
      mech.min_key_size = r.u32();
      mech.max_key_size = r.u32();
      mech.flags = r.u32();
    }
    s.objects.resize(r.count(MIN_OBJECT));
    for (Object& o : s.objects) {
      r.bytes(o.key_handle);
      if (o.key_handle.size() > MAX_KEY_HANDLE) r.fail("key_handle longer than 255 bytes");
      o.attributes.resize(r.count(MIN_ATTRIBUTE));
      for (Attribute& a : o.attributes) {
        a.type = r.u64();
        r.bytes(a.value);
      }
    }
    if (!r.ok()) return;
  }
}

void write_body(wire::Writer& w, const SignRequest& m) {
  w.bytes(m.key_handle);
  w.u64(m.mechanism);
  w.u64(m.hash_alg);
  w.u64(m.mgf);
  w.u32(m.salt_len);
  w.bytes(m.data);
}
void read_body(wire::Reader& r, SignRequest& m) {
  r.bytes(m.key_handle);
  if (m.key_handle.size() > MAX_KEY_HANDLE) r.fail("key_handle longer than 255 bytes");
  m.mechanism = r.u64();
  m.hash_alg = r.u64();
  m.mgf = r.u64();
  m.salt_len = r.u32();
  r.bytes(m.data);
}

void write_body(wire::Writer& w, const SignRequestView& m) {
  w.bytes(m.key_handle.data, m.key_handle.size);
  w.u64(m.mechanism);
  w.u64(m.hash_alg);
  w.u64(m.mgf);
  w.u32(m.salt_len);
  w.bytes(m.data.data, m.data.size);
}

void write_body(wire::Writer& w, const SignReply& m) { w.bytes(m.signature); }
void read_body(wire::Reader& r, SignReplyView& m) { m.signature = r.bytes(); }
void read_body(wire::Reader& r, SignReply& m) { r.bytes(m.signature); }

void write_body(wire::Writer& w, const LoginRequest& m) {
  w.u32(m.slot_id);
  w.u64(m.user_type);
  w.bytes(m.pin);
}
void write_body(wire::Writer& w, const LoginRequestView& m) {
  w.u32(m.slot_id);
  w.u64(m.user_type);
  w.bytes(m.pin.data, m.pin.size);
}
void read_body(wire::Reader& r, LoginRequest& m) {
  m.slot_id = r.u32();
  m.user_type = r.u64();
  r.bytes(m.pin);
}
void write_body(wire::Writer&, const LoginReply&) {}
void read_body(wire::Reader&, LoginReply&) {}

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
  if (h.kind > 1) {
    err = "unknown frame kind";
    return false;
  }
  f.call = ci->call;
  f.kind = static_cast<Kind>(h.kind);
  f.id = h.id;
  f.status = {};
  f.body = std::monostate{};
  wire::Reader r(p + HEADER_SIZE, n - HEADER_SIZE);
  if (f.kind == Kind::Request) {
    switch (f.call) {
      case Call::Hello: decode_as<HelloRequest>(r, f); break;
      case Call::GetInventory: decode_as<InventoryRequest>(r, f); break;
      case Call::Sign: decode_as<SignRequest>(r, f); break;
      case Call::Login: decode_as<LoginRequest>(r, f); break;
    }
  } else {
    f.status.rv = r.u32();
    if (r.ok() && f.status.rv != 0) {
      r.str(f.status.message);
    } else {
      switch (f.call) {
        case Call::Hello: decode_as<HelloReply>(r, f); break;
        case Call::GetInventory: decode_as<InventoryReply>(r, f); break;
        case Call::Sign: decode_as<SignReply>(r, f); break;
        case Call::Login: decode_as<LoginReply>(r, f); break;
      }
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
