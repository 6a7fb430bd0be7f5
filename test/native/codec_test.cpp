// sb_codec_test: the C++ side of the golden-frame contract (docs/protocol.md "Golden frames").
//   sb_codec_test <dir>      for every <name>.bin (sorted): one JSON line on stdout,
//                            {"file":"<name>","frame":{...}} or {"file":"<name>","error":"..."};
//                            decoded frames are re-encoded and must give the same bytes.
//                            Exit 1 if a frame that is not bad-* fails, a bad-* frame decodes,
//                            or a re-encoding differs.
//   sb_codec_test --self-test  framing checks: frames split and truncated at every byte.
#include <dirent.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "../common/framing.h"
#include "../common/messages.h"

using namespace sb::proto;

namespace {

// ---- canonical JSON (protocol.md: snake_case names, hex bytes, numbers, strings) ----
class Json {
 public:
  std::string out;
  void raw(const char* s) { out += s; }
  void key(const char* k) {
    comma();
    quoted(k);
    out += ':';
    fresh_ = true;
  }
  void num(uint64_t v) {
    comma();
    out += std::to_string(v);
  }
  void str(const std::string& s) {
    comma();
    quoted(s);
  }
  void quoted(const std::string& s) {
    out += '"';
    for (unsigned char c : s) {
      if (c == '"' || c == '\\') { out += '\\'; out += char(c); }
      else if (c < 0x20) {
        char buf[8];
        snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      } else out += char(c);
    }
    out += '"';
  }
  void hex(const Bytes& b) {
    static const char* d = "0123456789abcdef";
    std::string s;
    for (uint8_t c : b) { s += d[c >> 4]; s += d[c & 15]; }
    str(s);
  }
  void open(char c) { comma(); out += c; fresh_ = true; }
  void close(char c) { out += c; fresh_ = false; }

 private:
  void comma() {
    if (!fresh_ && !out.empty() && out.back() != '{' && out.back() != '[') out += ',';
    fresh_ = false;
  }
  bool fresh_ = true;
};

// Any record as JSON, walking the same field list as the codec (protocol.def); the golden
// LOGIN frames hold a made-up test PIN only.
template <class M> void body_json(Json& j, const M& m);
struct JsonFields {
  Json& j;
  template <class R> void operator()(wt::u8, uint8_t v, const char* name, const R&) { j.key(name); j.num(v); }
  template <class R> void operator()(wt::u16, uint16_t v, const char* name, const R&) { j.key(name); j.num(v); }
  template <class R> void operator()(wt::u32, uint32_t v, const char* name, const R&) { j.key(name); j.num(v); }
  template <class R> void operator()(wt::u64, uint64_t v, const char* name, const R&) { j.key(name); j.num(v); }
  template <class R> void operator()(wt::bytes, const Bytes& v, const char* name, const R&) { j.key(name); j.hex(v); }
  template <class R> void operator()(wt::str, const std::string& v, const char* name, const R&) { j.key(name); j.str(v); }
  template <class Item, class R>
  void operator()(wt::array<Item>, const std::vector<Item>& items, const char* name, const R&) {
    j.key(name);
    j.open('[');
    for (const Item& i : items) {
      j.open('{');
      body_json(j, i);
      j.close('}');
    }
    j.close(']');
  }
};
template <class M> void body_json(Json& j, const M& m) { Fields<M>::each(m, JsonFields{j}); }

void frame_json(Json& j, const Frame& f) {
  j.open('{');
  j.key("call"); j.str(find_call(static_cast<uint8_t>(f.call))->name);
  j.key("kind"); j.str(f.kind == Kind::Request ? "request" : "reply");
  j.key("id"); j.num(f.id);
  j.key("body"); j.open('{');
  if (f.kind == Kind::Reply) {
    j.key("rv"); j.num(f.status.rv);
    if (f.status.rv != 0) { j.key("message"); j.str(f.status.message); }
  }
  std::visit([&](const auto& m) {
    using T = std::decay_t<decltype(m)>;
    if constexpr (!std::is_same_v<T, std::monostate>) body_json(j, m);
  }, f.body);
  j.close('}');
  j.close('}');
}

bool read_file(const std::string& path, Bytes& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

int run_dir(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) {
    fprintf(stderr, "sb_codec_test: cannot open %s\n", dir.c_str());
    return 2;
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 4 && n.compare(n.size() - 4, 4, ".bin") == 0) names.push_back(n.substr(0, n.size() - 4));
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  int failures = 0;
  for (const std::string& name : names) {
    Bytes bin;
    Json j;
    j.open('{');
    j.key("file"); j.str(name);
    bool bad_expected = name.rfind("bad-", 0) == 0;
    Frame f;
    std::string err;
    if (!read_file(dir + "/" + name + ".bin", bin)) {
      err = "cannot read file";
      failures++;
    } else if (decode_frame(bin.data(), bin.size(), f, err)) {
      Bytes again;
      encode_frame(again, f);
      if (again != bin) {
        j.key("reencode"); j.str("mismatch");
        failures++;
      }
      if (bad_expected) failures++;
      j.key("frame");
      frame_json(j, f);
      err.clear();
    } else if (!bad_expected) {
      failures++;
    }
    if (!err.empty()) { j.key("error"); j.str(err); }
    j.close('}');
    printf("%s\n", j.out.c_str());
  }
  return failures ? 1 : 0;
}

// ---- self-test: framing at every byte boundary ----
int checks = 0, failed = 0;
void expect(bool ok, const std::string& what) {
  checks++;
  if (!ok) { failed++; fprintf(stderr, "FAIL: %s\n", what.c_str()); }
}

std::vector<Bytes> sample_frames() {
  std::vector<Bytes> out;
  auto add = [&](auto fn) { Bytes b; fn(b); out.push_back(std::move(b)); };
  add([](Bytes& b) { HelloRequest m; m.client = "sb_codec_test \xc3\xa9"; encode_request(b, Call::Hello, 1, m); });
  add([](Bytes& b) { HelloReply m{1, "signbridge daemon"}; encode_ok_reply(b, Call::Hello, 1, m); });
  add([](Bytes& b) { encode_request(b, Call::GetInventory, 2, InventoryRequest{}); });
  add([](Bytes& b) {
    InventoryReply m;
    m.generation = 0x0102030405060708ull;
    Slot s;
    s.slot_id = 7; s.slot_description = "slot"; s.manufacturer = "m"; s.token_label = "t1";
    s.token_model = "model"; s.token_serial = "0001"; s.token_flags = 0x40d;
    s.mechanisms = {{0x1, 2048, 4096, 0x800}, {0x1041, 256, 521, 0x800}};
    Object o;
    o.key_handle = {1, 2, 3};
    o.attributes = {{0x0, {3, 0, 0, 0, 0, 0, 0, 0}}, {0x102, {0x01}}, {0x3, {'k', 'e', 'y'}}};
    s.objects = {o, Object{}};
    m.slots = {s};
    encode_ok_reply(b, Call::GetInventory, 2, m);
  });
  add([](Bytes& b) {
    SignRequest m;
    m.key_handle = Bytes(16, 0xab); m.mechanism = 0x1041; m.hash_alg = 0x250; m.data = Bytes(32, 0x5a);
    encode_request(b, Call::Sign, 3, m);
  });
  add([](Bytes& b) { SignReply m{Bytes(64, 0x11)}; encode_ok_reply(b, Call::Sign, 3, m); });
  add([](Bytes& b) { encode_error_reply(b, Call::Sign, 4, 0x60, "no key with that handle"); });
  add([](Bytes& b) {
    LoginRequest m;
    m.slot_id = 1; m.user_type = 1; m.pin = {'t', 'e', 's', 't', '-', 'p', 'i', 'n'};
    encode_request(b, Call::Login, 5, m);
  });
  add([](Bytes& b) { encode_ok_reply(b, Call::Login, 5, LoginReply{}); });
  add([](Bytes& b) { encode_error_reply(b, Call::Login, 6, 0xa0, "wrong PIN"); });
  add([](Bytes& b) {  // the module's zero-copy form encodes the same bytes as LoginRequest
    uint8_t pin[] = {'t', 'e', 's', 't', '-', 'p', 'i', 'n'};
    encode_request(b, Call::Login, 5, LoginRequestView{1, 1, {pin, sizeof pin}});
  });
  add([](Bytes& b) {
    AuthorizeRequest m;
    m.key_handle = Bytes(16, 0xab); m.pin = {'1', '2', '3', '4', '5', '6'};
    encode_request(b, Call::Authorize, 7, m);
  });
  add([](Bytes& b) { encode_ok_reply(b, Call::Authorize, 7, AuthorizeReply{16}); });
  add([](Bytes& b) {  // the module's zero-copy form encodes the same bytes as AuthorizeRequest
    uint8_t kh[16];
    memset(kh, 0xab, sizeof kh);
    uint8_t otp[] = {'1', '2', '3', '4', '5', '6'};
    encode_request(b, Call::Authorize, 7, AuthorizeRequestView{{kh, sizeof kh}, {otp, sizeof otp}});
  });
  return out;
}

// Feeds `stream` to a scan loop in chunks cut at `cuts`, as a socket reader would.
std::vector<Bytes> reassemble(const Bytes& stream, const std::vector<size_t>& cuts, bool& bad) {
  std::vector<Bytes> frames;
  Bytes buf;
  size_t pos = 0;
  bad = false;
  std::vector<size_t> ends = cuts;
  ends.push_back(stream.size());
  for (size_t end : ends) {
    buf.insert(buf.end(), stream.begin() + pos, stream.begin() + end);
    pos = end;
    for (;;) {
      size_t size = 0;
      FrameStatus st = scan_frame(buf.data(), buf.size(), &size, nullptr);
      if (st == FrameStatus::Bad) { bad = true; return frames; }
      if (st == FrameStatus::NeedMore) break;
      frames.emplace_back(buf.begin(), buf.begin() + size);
      buf.erase(buf.begin(), buf.begin() + size);
    }
  }
  if (!buf.empty()) bad = true;  // leftover partial frame at end of stream
  return frames;
}

int self_test() {
  std::vector<Bytes> frames = sample_frames();
  for (size_t i = 0; i < frames.size(); i++) {
    const Bytes& fr = frames[i];
    std::string tag = "frame " + std::to_string(i);
    Frame f;
    std::string err;
    expect(decode_frame(fr.data(), fr.size(), f, err), tag + " decodes: " + err);
    Bytes again;
    encode_frame(again, f);
    expect(again == fr, tag + " re-encodes to the same bytes");
    // Every proper prefix: the framing says "need more", never "bad"; the decoder rejects it.
    for (size_t k = 0; k < fr.size(); k++) {
      size_t size = 0;
      expect(scan_frame(fr.data(), k, &size, nullptr) == FrameStatus::NeedMore,
             tag + " prefix " + std::to_string(k) + " needs more");
      Frame g;
      expect(!decode_frame(fr.data(), k, g, err), tag + " prefix " + std::to_string(k) + " rejected");
    }
    // Body truncated inside a well-formed frame (length patched): missing bytes → rejected.
    for (size_t k = HEADER_SIZE; k < fr.size(); k++) {
      Bytes t(fr.begin(), fr.begin() + k);
      uint32_t len = static_cast<uint32_t>(k - 4);
      for (int b = 0; b < 4; b++) t[b] = uint8_t(len >> (8 * b));
      Frame g;
      expect(!decode_frame(t.data(), t.size(), g, err), tag + " body cut at " + std::to_string(k) + " rejected");
    }
    // A trailing byte inside the frame → rejected.
    Bytes extra = fr;
    extra.push_back(0);
    uint32_t len = static_cast<uint32_t>(extra.size() - 4);
    for (int b = 0; b < 4; b++) extra[b] = uint8_t(len >> (8 * b));
    Frame g;
    expect(!decode_frame(extra.data(), extra.size(), g, err), tag + " trailing byte rejected");
  }
  // Two frames back to back, split at every single point (and at every pair of points).
  Bytes stream;
  for (const Bytes& fr : frames) stream.insert(stream.end(), fr.begin(), fr.end());
  for (size_t c = 0; c <= stream.size(); c++) {
    bool bad = false;
    auto got = reassemble(stream, {c}, bad);
    expect(!bad && got == frames, "stream split at " + std::to_string(c));
  }
  for (size_t c = 0; c < 64 && c < stream.size(); c++)
    for (size_t d = c; d < stream.size(); d += 7) {
      bool bad = false;
      auto got = reassemble(stream, {c, d}, bad);
      expect(!bad && got == frames, "stream split at " + std::to_string(c) + "," + std::to_string(d));
    }
  // Byte-by-byte delivery.
  {
    std::vector<size_t> cuts;
    for (size_t c = 1; c < stream.size(); c++) cuts.push_back(c);
    bool bad = false;
    expect(reassemble(stream, cuts, bad) == frames && !bad, "stream delivered byte by byte");
  }
  // Length out of bounds is "bad" as soon as the 4 length bytes are there — before any body.
  for (uint32_t len : {0u, 5u, MAX_LENGTH + 1, 0xffffffffu}) {
    uint8_t h[4] = {uint8_t(len), uint8_t(len >> 8), uint8_t(len >> 16), uint8_t(len >> 24)};
    expect(scan_frame(h, 4, nullptr, nullptr) == FrameStatus::Bad, "length " + std::to_string(len) + " is bad");
  }
  {
    uint32_t len = MAX_LENGTH;
    uint8_t h[4] = {uint8_t(len), uint8_t(len >> 8), uint8_t(len >> 16), uint8_t(len >> 24)};
    expect(scan_frame(h, 4, nullptr, nullptr) == FrameStatus::NeedMore, "MAX_FRAME length waits for the body");
  }
  // Unknown call, unknown kind, wrong magic, oversize array count, bad UTF-8.
  auto mutated = [&](size_t frame, size_t at, uint8_t v) {
    Bytes b = frames[frame];
    b[at] = v;
    Frame g;
    std::string err;
    return decode_frame(b.data(), b.size(), g, err);
  };
  expect(!mutated(0, 4, 0x06), "reserved call 0x06 rejected");
  expect(frames[7] == frames[10], "LoginRequestView encodes like LoginRequest");
  expect(frames[11] == frames[13], "AuthorizeRequestView encodes like AuthorizeRequest");
  {  // LOGIN with an empty PIN is well-formed (the daemon answers CKR_PIN_INCORRECT)
    Bytes b;
    encode_request(b, Call::Login, 9, LoginRequest{0, 1, {}});
    Frame g;
    std::string err;
    expect(decode_frame(b.data(), b.size(), g, err) && std::get<LoginRequest>(g.body).pin.empty(), "LOGIN with an empty pin decodes");
  }
  expect(!mutated(8, 13, 0x01), "LOGIN error reply without its message rejected");
  expect(!mutated(0, 5, 2), "kind 2 rejected");
  expect(!mutated(0, 10, 0x54), "wrong magic rejected");
  expect(!mutated(3, 25, 0xff), "slot count beyond the frame rejected");  // 10 header + 4 rv + 8 generation + 3
  {
    Bytes b = frames[0];
    b[b.size() - 1] = 0xff;  // last byte of the client string
    Frame g;
    std::string err;
    expect(!decode_frame(b.data(), b.size(), g, err), "invalid UTF-8 str rejected");
  }
  fprintf(stderr, "sb_codec_test self-test: %d checks, %d failed\n", checks, failed);
  return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--self-test") return self_test();
  if (argc != 2) {
    fprintf(stderr, "usage: sb_codec_test <frames-dir> | --self-test\n");
    return 2;
  }
  return run_dir(argv[1]);
}
