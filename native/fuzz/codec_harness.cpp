// sb_codec_harness: the C++ codec's verdict on a corpus, for the differential fuzz test
// (test/integration/fuzz-codec.test.ts runs the same cases through the TypeScript decoder).
//   sb_codec_harness <corpus-file>
// The corpus is a sequence of records: u32 little-endian length, then that many bytes.
// One line per record, tab-separated:
//   <index> <ok|err|violation> <frame sizes seen as a stream, comma-separated or -> <stream end: needmore|bad> <detail>
// `ok` detail is "<call> <kind> <id>"; `err` detail is the decoder's reason; `violation` is a
// property of fuzz_checks.h that failed. Exit 0, or 2 when any record violated a property,
// 1 on a bad corpus file.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_checks.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s <corpus-file>\n", argv[0]);
    return 1;
  }
  std::ifstream in(argv[1], std::ios::binary);
  if (!in) {
    fprintf(stderr, "cannot read %s\n", argv[1]);
    return 1;
  }
  std::vector<uint8_t> all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t off = 0, index = 0;
  int violations = 0;
  std::string out;
  while (off < all.size()) {
    if (all.size() - off < 4) {
      fprintf(stderr, "corpus: truncated record header at %zu\n", off);
      return 1;
    }
    size_t n = size_t(all[off]) | size_t(all[off + 1]) << 8 | size_t(all[off + 2]) << 16 | size_t(all[off + 3]) << 24;
    off += 4;
    if (all.size() - off < n) {
      fprintf(stderr, "corpus: record %zu runs past the end\n", index);
      return 1;
    }
    // A private copy: under ASan an over-read of the record is an over-read of this buffer.
    std::vector<uint8_t> rec(all.begin() + off, all.begin() + off + n);
    off += n;
    sb::fuzz::FrameVerdict v = sb::fuzz::check_frame(rec.data(), rec.size());
    sb::fuzz::StreamVerdict s = sb::fuzz::scan_stream(rec.data(), rec.size());
    std::string sizes;
    for (size_t f : s.frames) sizes += (sizes.empty() ? "" : ",") + std::to_string(f);
    if (sizes.empty()) sizes = "-";
    const char* end = s.end == sb::proto::FrameStatus::Bad ? "bad" : "needmore";
    out += std::to_string(index) + '\t';
    if (!v.violation.empty()) {
      violations++;
      out += "violation\t" + sizes + '\t' + end + '\t' + v.violation;
    } else if (v.ok) {
      const sb::proto::CallInfo* ci = sb::proto::find_call(static_cast<uint8_t>(v.frame.call));
      out += "ok\t" + sizes + '\t' + end + '\t' + ci->name + ' ' +
             (v.frame.kind == sb::proto::Kind::Request ? "request" : "reply") + ' ' + std::to_string(v.frame.id);
    } else {
      out += "err\t" + sizes + '\t' + end + '\t' + v.error;
    }
    out += '\n';
    index++;
    if (out.size() > 1 << 16) {
      fwrite(out.data(), 1, out.size(), stdout);
      out.clear();
    }
  }
  fwrite(out.data(), 1, out.size(), stdout);
  fprintf(stderr, "sb_codec_harness: %zu records, %d violations\n", index, violations);
  return violations ? 2 : 0;
}
