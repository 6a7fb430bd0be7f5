// libFuzzer target for the C++ side of the wire protocol (docs/protocol.md): the frame header
// and framing reader (scan_frame, over a stream of frames), every message decoder (decode_frame,
// and read_reply_body as the module calls it), and the module's inventory model built from a
// decoded GET_INVENTORY reply. Built with -fsanitize=fuzzer,address,undefined by
// native/fuzz/CMakeLists.txt; run by test/integration/fuzz-native.test.ts, seeded with
// test/fixtures/frames/*.bin. A property in fuzz_checks.h that fails aborts the run.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "fuzz_checks.h"

// SIGNBRIDGE_FUZZ_CANARY=1: an input starting with "SBG1" reads one byte past its end, so the
// test can show that an ASan error really fails the run.
static const bool g_canary = getenv("SIGNBRIDGE_FUZZ_CANARY") != nullptr;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sb;
  if (g_canary && size >= 4 && memcmp(data, "SBG1", 4) == 0) {
    volatile uint8_t past_end = data[size];
    (void)past_end;
  }
  // The input as one frame.
  fuzz::FrameVerdict v = fuzz::check_frame(data, size);
  if (!v.violation.empty()) {
    fprintf(stderr, "signbridge fuzz property violated: %s\n", v.violation.c_str());
    abort();
  }
  // The input as a stream (what the module's reader loops over): every complete frame in it
  // is decoded too, so mutations behind a first good frame reach the decoders.
  fuzz::StreamVerdict s = fuzz::scan_stream(data, size);
  size_t off = 0;
  for (size_t f : s.frames) {
    fuzz::FrameVerdict fv = fuzz::check_frame(data + off, f);
    if (!fv.violation.empty()) {
      fprintf(stderr, "signbridge fuzz property violated (frame at %zu): %s\n", off, fv.violation.c_str());
      abort();
    }
    off += f;
  }
  // Every body decoder of the call table (protocol.def) on the raw bytes as a body (no header):
  // requests as the daemon would see them if it were C++, replies as the module sees them.
#include "../common/protocol_def_open.h"
#undef SB_CALL
#define SB_CALL(code, NAME, Id, Req, Rep)   \
  {                                         \
    wire::Reader r(data, size);             \
    proto::Req m;                           \
    proto::read_body(r, m);                 \
    r.finish();                             \
  }                                         \
  fuzz::reply_body_ok<proto::Rep>(data, size);
#include "../common/protocol.def"
#include "../common/protocol_def_close.h"
  fuzz::reply_body_ok<proto::SignReplyView>(data, size);
  {
    proto::ReplyStatus st;
    proto::InventoryReply inv;
    std::string err;
    if (proto::read_reply_body(data, size, st, inv, err) && st.rv == 0) {
      std::string bad = fuzz::check_inventory(inv);
      if (!bad.empty()) {
        fprintf(stderr, "signbridge fuzz property violated (inventory body): %s\n", bad.c_str());
        abort();
      }
    }
  }
  return 0;
}
