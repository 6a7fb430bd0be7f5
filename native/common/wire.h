// Body primitives (protocol.md "Body primitives"): a growable Writer and a bounded Reader.
// The Reader never reads past its end; the first error is sticky and every later read
// returns zero/empty, so decoders check ok() once at the end.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sb::wire {

struct ByteView {
  const uint8_t* data = nullptr;
  size_t size = 0;
};

class Writer {
 public:
  explicit Writer(std::vector<uint8_t>& out) : out_(out) {}
  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) { le(v, 2); }
  void u32(uint32_t v) { le(v, 4); }
  void u64(uint64_t v) { le(v, 8); }
  void raw(const uint8_t* p, size_t n) {
    if (n) out_.insert(out_.end(), p, p + n);
  }
  void bytes(const uint8_t* p, size_t n) {
    u32(static_cast<uint32_t>(n));
    raw(p, n);
  }
  void bytes(const std::vector<uint8_t>& v) { bytes(v.data(), v.size()); }
  void str(std::string_view s) { bytes(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }
  size_t size() const { return out_.size(); }
  void patch_u32(size_t at, uint32_t v) {
    for (int i = 0; i < 4; i++) out_[at + i] = static_cast<uint8_t>(v >> (8 * i));
  }

 private:
  void le(uint64_t v, int n) {
    for (int i = 0; i < n; i++) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t>& out_;
};

class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  uint8_t u8() { return static_cast<uint8_t>(le(1)); }
  uint16_t u16() { return static_cast<uint16_t>(le(2)); }
  uint32_t u32() { return static_cast<uint32_t>(le(4)); }
  uint64_t u64() { return le(8); }
  ByteView bytes();                      // u32 length + bytes, bounded by what is left
  void bytes(std::vector<uint8_t>& out); // same, copied (reuses out's capacity)
  bool str(std::string& out);            // bytes that must be valid UTF-8
  // array<T> count; `min_item` is the smallest encoded item, so a count that cannot fit in
  // what is left fails before anyone allocates for it.
  uint32_t count(size_t min_item);
  void fail(const char* why) {
    if (ok_) { ok_ = false; error_ = why; }
  }
  bool ok() const { return ok_; }
  size_t left() const { return ok_ ? n_ - pos_ : 0; }
  // True when every byte was consumed without error (protocol: no trailing bytes).
  bool finish() {
    if (ok_ && pos_ != n_) fail("trailing bytes after the last field");
    return ok_;
  }
  const char* error() const { return error_; }

 private:
  uint64_t le(size_t n);
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
  bool ok_ = true;
  const char* error_ = "";
};

bool valid_utf8(const uint8_t* p, size_t n);

}  // namespace sb::wire
