// The one generic body codec: write_body/read_body walk a record's field list (records.h,
// generated from protocol.def) with one overload per wire type — no per-message code (after
// p11-kit's rpc-message.c, whose call table drives a generic (de)serialiser).
// Decoding is bounded and its first error sticks (wire.h Reader); encoding does not check
// rules (the module only encodes what it built; the daemon's decoder checks).
#pragma once
#include <type_traits>

#include "records.h"

namespace sb::proto {

template <class M> void write_body(wire::Writer& w, const M& m);
template <class M> void read_body(wire::Reader& r, M& m);

namespace detail {

struct Encoder {
  wire::Writer& w;
  template <class Rule> void operator()(wt::u8, uint8_t v, const char*, const Rule&) { w.u8(v); }
  template <class Rule> void operator()(wt::u16, uint16_t v, const char*, const Rule&) { w.u16(v); }
  template <class Rule> void operator()(wt::u32, uint32_t v, const char*, const Rule&) { w.u32(v); }
  template <class Rule> void operator()(wt::u64, uint64_t v, const char*, const Rule&) { w.u64(v); }
  template <class Rule> void operator()(wt::bytes, const Bytes& v, const char*, const Rule&) { w.bytes(v); }
  template <class Rule> void operator()(wt::bytes, const wire::ByteView& v, const char*, const Rule&) { w.bytes(v.data, v.size); }
  template <class Rule> void operator()(wt::str, const std::string& v, const char*, const Rule&) { w.str(v); }
  template <class Item, class Rule>
  void operator()(wt::array<Item>, const std::vector<Item>& items, const char*, const Rule&) {
    w.u32(static_cast<uint32_t>(items.size()));
    for (const Item& i : items) write_body(w, i);
  }
};

// Rules of protocol.def: SB_FIELD_IS (an integer's value), SB_FIELD_MAX (a bytes/str length).
template <class T> void check(wire::Reader&, T, const NoRule&) {}
inline void check(wire::Reader& r, uint64_t v, const Equals& e) {
  if (r.ok() && v != e.value) r.fail(e.why);
}
inline void check(wire::Reader& r, size_t len, const MaxLen& m) {
  if (len > m.limit) r.fail(m.why);
}

struct Decoder {
  wire::Reader& r;
  template <class Rule> void operator()(wt::u8, uint8_t& v, const char*, const Rule& rule) { v = r.u8(); check(r, uint64_t{v}, rule); }
  template <class Rule> void operator()(wt::u16, uint16_t& v, const char*, const Rule& rule) { v = r.u16(); check(r, uint64_t{v}, rule); }
  template <class Rule> void operator()(wt::u32, uint32_t& v, const char*, const Rule& rule) { v = r.u32(); check(r, uint64_t{v}, rule); }
  template <class Rule> void operator()(wt::u64, uint64_t& v, const char*, const Rule& rule) { v = r.u64(); check(r, v, rule); }
  template <class Rule> void operator()(wt::bytes, Bytes& v, const char*, const Rule& rule) {
    r.bytes(v);  // reuses v's capacity (the module's buffers on its hot path)
    check(r, v.size(), rule);
  }
  template <class Rule> void operator()(wt::bytes, wire::ByteView& v, const char*, const Rule& rule) {
    v = r.bytes();  // in place: valid as long as the reader's buffer
    check(r, v.size, rule);
  }
  template <class Rule> void operator()(wt::str, std::string& v, const char*, const Rule& rule) {
    r.str(v);
    check(r, v.size(), rule);
  }
  template <class Item, class Rule>
  void operator()(wt::array<Item>, std::vector<Item>& items, const char*, const Rule&) {
    // The count is bounded by what is left before anything is allocated (Reader::count).
    items.resize(r.count(MinSize<Item>::value));
    for (Item& i : items) {
      read_body(r, i);
      if (!r.ok()) return;
    }
  }
};

}  // namespace detail

// Body encoder/decoder of any record (no header, no envelope).
template <class M> void write_body(wire::Writer& w, const M& m) { Fields<M>::each(m, detail::Encoder{w}); }
template <class M> void read_body(wire::Reader& r, M& m) { Fields<M>::each(m, detail::Decoder{r}); }

}  // namespace sb::proto
