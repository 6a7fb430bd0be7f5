#include "framing.h"

#include "wire.h"

namespace sb::proto {

static uint32_t le32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

FrameStatus scan_frame(const uint8_t* p, size_t n, size_t* frame_size, const char** why) {
  if (n < 4) return FrameStatus::NeedMore;
  uint32_t length = le32(p);
  // Bounds first, so a hostile length never makes us wait for (or allocate) 4 GiB.
  if (length < MIN_LENGTH || length > MAX_LENGTH) {
    if (why) *why = length < MIN_LENGTH ? "frame length below the header size" : "frame length above MAX_FRAME";
    return FrameStatus::Bad;
  }
  if (n - 4 < length) return FrameStatus::NeedMore;
  if (frame_size) *frame_size = size_t(length) + 4;
  return FrameStatus::Complete;
}

FrameHeader read_header(const uint8_t* p) {
  FrameHeader h;
  h.length = le32(p);
  h.call = p[4];
  h.kind = p[5];
  h.id = le32(p + 6);
  return h;
}

size_t begin_frame(std::vector<uint8_t>& out, Call call, Kind kind, uint32_t id) {
  size_t start = out.size();
  wire::Writer w(out);
  w.u32(0);  // patched by finish_frame
  w.u8(static_cast<uint8_t>(call));
  w.u8(static_cast<uint8_t>(kind));
  w.u32(id);
  return start;
}

void finish_frame(std::vector<uint8_t>& out, size_t start) {
  wire::Writer w(out);
  w.patch_u32(start, static_cast<uint32_t>(out.size() - start - 4));
}

}  // namespace sb::proto
