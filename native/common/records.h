// The message bodies and nested records of protocol.def as C++ structs, and, for each, the
// list of its fields in wire order (Fields<T>::each) that the one generic codec (codec.h) walks.
// A record is a template over how it holds `bytes`: Owned (a Bytes copy) or Borrowed (a
// ByteView into someone else's buffer, for the module's zero-copy SIGN/LOGIN path).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "protocol.h"
#include "wire.h"

namespace sb::proto {

using Bytes = std::vector<uint8_t>;

// Wire types, as protocol.def names them (protocol.md "Body primitives").
namespace wt {
struct u8 {};
struct u16 {};
struct u32 {};
struct u64 {};
struct bytes {};
struct str {};
template <class Record>
struct array {};
}  // namespace wt

struct Owned {};
struct Borrowed {};

// The C++ member type of a field of wire type W in a record held as Rep.
template <class Rep, class W> struct FieldType;
template <class Rep> struct FieldType<Rep, wt::u8> { using type = uint8_t; };
template <class Rep> struct FieldType<Rep, wt::u16> { using type = uint16_t; };
template <class Rep> struct FieldType<Rep, wt::u32> { using type = uint32_t; };
template <class Rep> struct FieldType<Rep, wt::u64> { using type = uint64_t; };
template <> struct FieldType<Owned, wt::bytes> { using type = Bytes; };
template <> struct FieldType<Borrowed, wt::bytes> { using type = wire::ByteView; };
template <class Rep> struct FieldType<Rep, wt::str> { using type = std::string; };
template <class Rep, class W>
using field_t = typename FieldType<Rep, W>::type;

// Smallest encoding of a wire type (an empty bytes/str/array is its u32 length or count).
template <class W> inline constexpr size_t min_wire_size = 4;
template <> inline constexpr size_t min_wire_size<wt::u8> = 1;
template <> inline constexpr size_t min_wire_size<wt::u16> = 2;
template <> inline constexpr size_t min_wire_size<wt::u64> = 8;

// Field rules (protocol.def SB_FIELD_MAX / SB_FIELD_IS), applied by the decoder.
struct NoRule {};
struct MaxLen {
  size_t limit;
  const char* why;
};
struct Equals {
  uint64_t value;
  const char* why;
};

// ---- pass 1: the structs (aggregates, members in wire order) ----
#define SB_RECORD(Name) template <class Rep> struct Name##T {
#define SB_FIELD(type, name) field_t<Rep, wt::type> name{};
#define SB_FIELD_MAX(type, name, limit) field_t<Rep, wt::type> name{};
#define SB_FIELD_IS(type, name, value) field_t<Rep, wt::type> name = value;
#define SB_FIELD_INIT(type, name, value) field_t<Rep, wt::type> name = value;
#define SB_ARRAY(Record, name) std::vector<Record> name;
#define SB_END(Name) \
  };                 \
  using Name = Name##T<Owned>;
#define SB_VIEW(View, Record) using View = Record##T<Borrowed>;
#include "protocol_def_open.h"
#include "protocol.def"
#include "protocol_def_close.h"

// ---- pass 2: each record's fields in wire order: v(wire type, member, "name", rule) ----
template <class M> struct Fields;
#define SB_RECORD(Name)                          \
  template <class Rep> struct Fields<Name##T<Rep>> { \
    template <class M, class V>                  \
    static void each(M& m, V&& v) {
#define SB_FIELD(type, name) v(wt::type{}, m.name, #name, NoRule{});
#define SB_FIELD_MAX(type, name, limit) v(wt::type{}, m.name, #name, MaxLen{limit, #name " longer than the protocol allows"});
#define SB_FIELD_IS(type, name, value) v(wt::type{}, m.name, #name, Equals{value, "wrong " #name});
#define SB_FIELD_INIT(type, name, value) v(wt::type{}, m.name, #name, NoRule{});
#define SB_ARRAY(Record, name) v(wt::array<Record>{}, m.name, #name, NoRule{});
#define SB_END(Name) \
  }                  \
  };
#include "protocol_def_open.h"
#include "protocol.def"
#include "protocol_def_close.h"

// ---- pass 3: smallest encoding of each record, for Reader::count (protocol.md "array<T>") ----
template <class M> struct MinSize;
#define SB_RECORD(Name) \
  template <class Rep> struct MinSize<Name##T<Rep>> { static constexpr size_t value = 0
#define SB_FIELD(type, name) +min_wire_size<wt::type>
#define SB_FIELD_MAX(type, name, limit) +min_wire_size<wt::type>
#define SB_FIELD_IS(type, name, value) +min_wire_size<wt::type>
#define SB_FIELD_INIT(type, name, value) +min_wire_size<wt::type>
#define SB_ARRAY(Record, name) +4
#define SB_END(Name) \
  ;                  \
  };
#include "protocol_def_open.h"
#include "protocol.def"
#include "protocol_def_close.h"

}  // namespace sb::proto
