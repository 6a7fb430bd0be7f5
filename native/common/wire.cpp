#include "wire.h"

namespace sb::wire {

uint64_t Reader::le(size_t n) {
  if (!ok_) return 0;
  if (n_ - pos_ < n) {
    fail("missing bytes: field runs past the end of the frame");
    return 0;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v |= static_cast<uint64_t>(p_[pos_ + i]) << (8 * i);
  pos_ += n;
  return v;
}

ByteView Reader::bytes() {
  uint32_t len = u32();
  if (!ok_) return {};
  if (len > n_ - pos_) {
    fail("bytes length exceeds what is left in the frame");
    return {};
  }
  ByteView v{p_ + pos_, len};
  pos_ += len;
  return v;
}

void Reader::bytes(std::vector<uint8_t>& out) {
  ByteView v = bytes();
  out.assign(v.data, v.data + v.size);
}

bool Reader::str(std::string& out) {
  ByteView v = bytes();
  if (!ok_) return false;
  if (!valid_utf8(v.data, v.size)) {
    fail("str is not valid UTF-8");
    return false;
  }
  out.assign(reinterpret_cast<const char*>(v.data), v.size);
  return true;
}

uint32_t Reader::count(size_t min_item) {
  uint32_t c = u32();
  if (!ok_) return 0;
  if (min_item && c > (n_ - pos_) / min_item) {
    fail("array count larger than the bytes left");
    return 0;
  }
  return c;
}

// RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF.
bool valid_utf8(const uint8_t* p, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = p[i];
    if (c < 0x80) { i++; continue; }
    size_t extra;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) { extra = 1; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { extra = 2; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { extra = 3; cp = c & 0x07; }
    else return false;
    if (n - i <= extra) return false;
    for (size_t k = 1; k <= extra; k++) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000))
      return false;
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

}  // namespace sb::wire
