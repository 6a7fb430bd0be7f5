// Wire protocol constants and the call table (docs/protocol.md, version 1), generated from
// protocol.def, the one definition src/ipc/protocol-table.generated.ts also comes from.
// Shipped calls never change.
#pragma once
#include <cstddef>
#include <cstdint>

namespace sb::proto {

// Constant types as protocol.def spells them.
namespace def_types {
using u8 = uint8_t;
using u16 = uint16_t;
using u32 = uint32_t;
using u64 = uint64_t;
using size = size_t;
}  // namespace def_types

// VERSION_MIN/MAX, HELLO_MAGIC, MAX_FRAME, HEADER_SIZE (u32 length, u8 call, u8 kind, u32 id),
// MIN_LENGTH/MAX_LENGTH (bounds of `length`), KIND_*, MAX_KEY_HANDLE, CKU_USER_TYPE.
#define SB_CONST(type, name, value) constexpr def_types::type name = value;
#include "protocol_def_open.h"
#include "protocol.def"
#include "protocol_def_close.h"

enum class Kind : uint8_t { Request = KIND_REQUEST, Reply = KIND_REPLY };

enum class Call : uint8_t {
#define SB_CALL(code, NAME, Id, Req, Rep) Id = code,
#include "protocol_def_open.h"
#include "protocol.def"
#include "protocol_def_close.h"
};

struct CallInfo {
  Call call;
  const char* name;
};

// The one call table (protocol.md "Call table (version 1)").
inline constexpr CallInfo CALL_TABLE[] = {
#define SB_CALL(code, NAME, Id, Req, Rep) {Call::Id, #NAME},
#include "protocol_def_open.h"
#include "protocol.def"
#include "protocol_def_close.h"
};

// nullptr when `code` is not a version-1 call.
inline const CallInfo* find_call(uint8_t code) {
  for (const auto& c : CALL_TABLE)
    if (static_cast<uint8_t>(c.call) == code) return &c;
  return nullptr;
}

}  // namespace sb::proto
