// Wire protocol constants and the call table (docs/protocol.md, version 1).
// Mirrored by src/ipc/protocol.ts; shipped calls never change.
#pragma once
#include <cstddef>
#include <cstdint>

namespace sb::proto {

constexpr uint32_t MAX_FRAME = 4u * 1024u * 1024u;  // header included (protocol.md "Framing")
constexpr size_t HEADER_SIZE = 10;                   // u32 length, u8 call, u8 kind, u32 id
constexpr uint32_t MIN_LENGTH = 6;                   // `length` counts call+kind+id+body
constexpr uint32_t MAX_LENGTH = MAX_FRAME - 4;

constexpr uint32_t HELLO_MAGIC = 0x31474253;  // "SBG1" little-endian
constexpr uint16_t VERSION_MIN = 1;
constexpr uint16_t VERSION_MAX = 1;
constexpr size_t MAX_KEY_HANDLE = 255;  // protocol.md "object": key_handle at most 255 bytes
constexpr uint64_t CKU_USER_TYPE = 1;    // protocol.md "LOGIN": the only user_type the daemon accepts

enum class Kind : uint8_t { Request = 0, Reply = 1 };

enum class Call : uint8_t { Hello = 0x01, GetInventory = 0x02, Sign = 0x03, Login = 0x04 };

struct CallInfo {
  Call call;
  const char* name;
};

// The one call table (protocol.md "Call table (version 1)").
inline constexpr CallInfo CALL_TABLE[] = {
    {Call::Hello, "HELLO"},
    {Call::GetInventory, "GET_INVENTORY"},
    {Call::Sign, "SIGN"},
    {Call::Login, "LOGIN"},
};

// nullptr when `code` is not a version-1 call.
inline const CallInfo* find_call(uint8_t code) {
  for (const auto& c : CALL_TABLE)
    if (static_cast<uint8_t>(c.call) == code) return &c;
  return nullptr;
}

}  // namespace sb::proto
