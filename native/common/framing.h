// Framing (protocol.md "Framing"), separate from the codec: finds frame boundaries in a byte
// stream and bounds `length` before anyone allocates a body.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "protocol.h"

namespace sb::proto {

struct FrameHeader {
  uint32_t length = 0;  // bytes after the length field
  uint8_t call = 0;
  uint8_t kind = 0;
  uint32_t id = 0;
};

enum class FrameStatus { Complete, NeedMore, Bad };

// Looks at the start of a stream buffer. Complete: *frame_size is the whole frame (header
// included). NeedMore: not enough bytes yet (read more, keep what you have). Bad: `length`
// is out of bounds; stop reading and close the connection (*why says what was wrong).
FrameStatus scan_frame(const uint8_t* p, size_t n, size_t* frame_size, const char** why);

// Header of a buffer that scan_frame reported Complete.
FrameHeader read_header(const uint8_t* p);

// Starts a frame in `out` (appending); finish_frame patches the length once the body is written.
size_t begin_frame(std::vector<uint8_t>& out, Call call, Kind kind, uint32_t id);
void finish_frame(std::vector<uint8_t>& out, size_t start);

}  // namespace sb::proto
