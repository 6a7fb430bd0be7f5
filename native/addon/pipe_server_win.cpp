// The daemon's named-pipe server on Windows (docs/windows.md "The daemon on a named pipe").
// Node's net.Server can listen on a pipe but never shows the pipe handle to JavaScript, and the
// client's identity is only known from that handle (GetNamedPipeClientProcessId) — so the addon
// owns the pipe and hands JavaScript bytes and events:
//   pipeListen(name, onEvent) → { write(id, buf), end(id), destroy(id), close() }
//   onEvent('connect', id, {pid, sid, account, exe, sameUser}) | ('data', id, Buffer) | ('close', id)
// The first instance is created with FILE_FLAG_FIRST_PIPE_INSTANCE: when the name already exists
// (another daemon, or another user squatting on it) listening fails, never shares the name. The
// pipe's DACL grants only the daemon's own user; PIPE_REJECT_REMOTE_CLIENTS keeps it local.
// Each connection has one I/O thread (overlapped reads and writes on one handle); events reach
// JavaScript through one thread-safe function that never blocks (unbounded queue).
#include <napi.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pipe_peer_win.h"

namespace {

using sb::to_utf8;
using sb::to_wide;
using sb::win_error_text;
using sb::pipe::identify;
using sb::pipe::Peer;
using sb::pipe::sid_string;
using sb::pipe::token_sid;

constexpr DWORD BUF = 65536;

struct Event {
  enum Kind { Connect, Data, Close } kind;
  uint32_t id;
  Peer peer;
  std::vector<uint8_t> bytes;
};

class Server;

struct Conn {
  uint32_t id = 0;
  HANDLE pipe = INVALID_HANDLE_VALUE;
  HANDLE wake = nullptr;  // auto-reset: writes queued or a close asked for
  std::mutex mu;
  std::deque<std::vector<uint8_t>> out;
  bool end_after_writes = false;
  std::atomic<bool> destroy{false};
  ~Conn() {
    if (wake) CloseHandle(wake);
  }
};

class Server : public Napi::ObjectWrap<Server> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "PipeServer",
                       {InstanceMethod("write", &Server::Write), InstanceMethod("end", &Server::End),
                        InstanceMethod("destroy", &Server::Destroy), InstanceMethod("close", &Server::Close)});
  }

  Server(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Server>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 2 || !info[0].IsString() || !info[1].IsFunction())
      throw Napi::TypeError::New(env, "pipeListen(name, onEvent) expects a pipe name and a function");
    name_ = to_wide(info[0].As<Napi::String>().Utf8Value());
    std::string err;
    own_sid_ = token_sid(GetCurrentProcess(), err);
    if (own_sid_.empty()) throw coded(env, "cannot read the daemon's own user SID: " + err, "SIGNBRIDGE_ERR_PEERCRED");
    build_dacl();
    // FILE_FLAG_FIRST_PIPE_INSTANCE is the refusal on Windows; Wine ignores it, so ask first too:
    // WaitNamedPipeW fails with ERROR_FILE_NOT_FOUND only when no instance of the name exists.
    if (WaitNamedPipeW(name_.c_str(), 1) || GetLastError() != ERROR_FILE_NOT_FOUND)
      throw coded(env, "the named pipe " + to_utf8(name_) + " already exists (another daemon or another user holds it)",
                  "SIGNBRIDGE_ERR_PIPE_EXISTS");
    HANDLE first = create_instance(true);
    if (first == INVALID_HANDLE_VALUE) {
      DWORD e = GetLastError();
      bool exists = e == ERROR_ACCESS_DENIED || e == ERROR_PIPE_BUSY;
      throw coded(env, "cannot create the named pipe " + to_utf8(name_) + ": " + win_error_text(e) +
                           (exists ? " (the name is taken: another daemon or another user holds it)" : ""),
                  exists ? "SIGNBRIDGE_ERR_PIPE_EXISTS" : "SIGNBRIDGE_ERR_PIPE");
    }
    stop_ = CreateEventW(nullptr, TRUE, FALSE, nullptr);
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "signbridge-pipe", 0, 1);
    accept_ = std::thread([this, first] { accept_loop(first); });
  }

  ~Server() override { shutdown(); }

 private:
  static Napi::Error coded(Napi::Env env, const std::string& msg, const char* code) {
    Napi::Error e = Napi::Error::New(env, msg);
    e.Set("code", Napi::String::New(env, code));
    return e;
  }

  void build_dacl() {
    // Only the daemon's user: FILE_ALL_ACCESS for its SID, nothing for anyone else.
    DWORD acl_len = sizeof(ACL) + sizeof(ACCESS_ALLOWED_ACE) + static_cast<DWORD>(own_sid_.size());
    acl_.resize(acl_len);
    auto* acl = reinterpret_cast<PACL>(acl_.data());
    InitializeAcl(acl, acl_len, ACL_REVISION);
    AddAccessAllowedAce(acl, ACL_REVISION, FILE_ALL_ACCESS, own_sid_.data());
    InitializeSecurityDescriptor(&sd_, SECURITY_DESCRIPTOR_REVISION);
    SetSecurityDescriptorDacl(&sd_, TRUE, acl, FALSE);
    sa_ = {sizeof(SECURITY_ATTRIBUTES), &sd_, FALSE};
  }

  HANDLE create_instance(bool first) {
    return CreateNamedPipeW(name_.c_str(), PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0),
                            PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                            PIPE_UNLIMITED_INSTANCES, BUF, BUF, 0, &sa_);
  }

  void emit(Event* ev) {
    napi_status s = tsfn_.NonBlockingCall(ev, [](Napi::Env env, Napi::Function fn, Event* e) {
      std::unique_ptr<Event> own(e);
      Napi::Number id = Napi::Number::New(env, e->id);
      if (e->kind == Event::Data) {
        fn.Call({Napi::String::New(env, "data"), id, Napi::Buffer<uint8_t>::Copy(env, e->bytes.data(), e->bytes.size())});
      } else if (e->kind == Event::Close) {
        fn.Call({Napi::String::New(env, "close"), id});
      } else {
        Napi::Object p = Napi::Object::New(env);
        p.Set("pid", Napi::Number::New(env, e->peer.pid));
        p.Set("sid", e->peer.sid.empty() ? env.Null() : Napi::String::New(env, sid_string(e->peer.sid)));
        p.Set("account", e->peer.sid.empty() ? env.Null() : Napi::String::New(env, sb::sid_account(e->peer.sid.data())));
        p.Set("exe", e->peer.exe.empty() ? env.Null() : Napi::String::New(env, e->peer.exe));
        p.Set("error", e->peer.error.empty() ? env.Null() : Napi::String::New(env, e->peer.error));
        fn.Call({Napi::String::New(env, "connect"), id, p});
      }
    });
    if (s != napi_ok) delete ev;  // closing: nobody listens any more
  }

  void accept_loop(HANDLE pipe) {
    HANDLE ev = CreateEventW(nullptr, TRUE, FALSE, nullptr);
    while (pipe != INVALID_HANDLE_VALUE) {
      OVERLAPPED ov{};
      ov.hEvent = ev;
      bool connected = ConnectNamedPipe(pipe, &ov) != 0;
      DWORD e = connected ? 0 : GetLastError();
      if (!connected && e == ERROR_IO_PENDING) {
        HANDLE both[2] = {ev, stop_};
        if (WaitForMultipleObjects(2, both, FALSE, INFINITE) != WAIT_OBJECT_0) {
          CancelIoEx(pipe, &ov);
          DWORD ignored;
          GetOverlappedResult(pipe, &ov, &ignored, TRUE);
          CloseHandle(pipe);
          break;
        }
        DWORD ignored;
        connected = GetOverlappedResult(pipe, &ov, &ignored, FALSE) != 0;
        e = connected ? 0 : GetLastError();
      }
      if (e == ERROR_PIPE_CONNECTED) connected = true;  // the client came before ConnectNamedPipe
      HANDLE next = create_instance(false);             // the next client's instance, at once
      if (connected) start_conn(pipe);
      else CloseHandle(pipe);  // a client that left before we saw it
      pipe = next;
      if (WaitForSingleObject(stop_, 0) == WAIT_OBJECT_0) {
        if (pipe != INVALID_HANDLE_VALUE) CloseHandle(pipe);
        break;
      }
    }
    CloseHandle(ev);
  }

  void start_conn(HANDLE pipe) {
    auto c = std::make_shared<Conn>();
    c->pipe = pipe;
    c->wake = CreateEventW(nullptr, FALSE, FALSE, nullptr);
    {
      std::lock_guard<std::mutex> g(mu_);
      c->id = next_id_++;
      conns_[c->id] = c;
    }
    auto* hello = new Event{Event::Connect, c->id, identify(pipe), {}};
    emit(hello);  // before the I/O thread starts: 'connect' reaches JavaScript before any 'data'
    {
      std::lock_guard<std::mutex> g(mu_);
      active_++;
    }
    // Detached: shutdown() waits for `active_` to reach 0 instead of joining.
    std::thread([this, c] { io_loop(*c); }).detach();
  }

  // Writes the queued buffers in order; false when the pipe broke.
  bool flush(Conn& c, HANDLE ev) {
    for (;;) {
      std::vector<uint8_t> buf;
      {
        std::lock_guard<std::mutex> g(c.mu);
        if (c.out.empty()) return true;
        buf = std::move(c.out.front());
        c.out.pop_front();
      }
      size_t sent = 0;
      while (sent < buf.size()) {
        OVERLAPPED ov{};
        ov.hEvent = ev;
        DWORD done = 0;
        if (!WriteFile(c.pipe, buf.data() + sent, static_cast<DWORD>(buf.size() - sent), nullptr, &ov) &&
            GetLastError() != ERROR_IO_PENDING)
          return false;
        HANDLE both[2] = {ev, stop_};
        if (WaitForMultipleObjects(2, both, FALSE, INFINITE) != WAIT_OBJECT_0 || c.destroy) {
          CancelIoEx(c.pipe, &ov);
          GetOverlappedResult(c.pipe, &ov, &done, TRUE);
          return false;
        }
        if (!GetOverlappedResult(c.pipe, &ov, &done, FALSE)) return false;
        sent += done;
      }
    }
  }

  void io_loop(Conn& c) {
    HANDLE rev = CreateEventW(nullptr, TRUE, FALSE, nullptr);
    HANDLE wev = CreateEventW(nullptr, TRUE, FALSE, nullptr);
    std::vector<uint8_t> buf(BUF);
    OVERLAPPED rov{};
    bool reading = false;
    bool ended = false;
    for (;;) {
      if (!reading) {
        rov = OVERLAPPED{};
        rov.hEvent = rev;
        if (!ReadFile(c.pipe, buf.data(), BUF, nullptr, &rov) && GetLastError() != ERROR_IO_PENDING) break;
        reading = true;
      }
      HANDLE all[3] = {rev, c.wake, stop_};
      DWORD w = WaitForMultipleObjects(3, all, FALSE, INFINITE);
      if (w == WAIT_OBJECT_0) {
        reading = false;
        DWORD n = 0;
        if (!GetOverlappedResult(c.pipe, &rov, &n, FALSE)) break;  // the client closed (broken pipe) or failed
        if (n > 0) emit(new Event{Event::Data, c.id, {}, std::vector<uint8_t>(buf.begin(), buf.begin() + n)});
        continue;
      }
      if (w != WAIT_OBJECT_0 + 1 || c.destroy) break;
      if (!flush(c, wev)) break;
      bool end;
      {
        std::lock_guard<std::mutex> g(c.mu);
        end = c.end_after_writes && c.out.empty();
      }
      if (end) {
        // Closed without DisconnectNamedPipe, which would drop the last reply unread; the client
        // still reads what is in the pipe, then sees it broken.
        ended = true;
        break;
      }
    }
    if (reading) {
      CancelIoEx(c.pipe, &rov);
      DWORD ignored;
      GetOverlappedResult(c.pipe, &rov, &ignored, TRUE);
    }
    if (!ended) DisconnectNamedPipe(c.pipe);
    CloseHandle(c.pipe);
    c.pipe = INVALID_HANDLE_VALUE;
    CloseHandle(rev);
    CloseHandle(wev);
    emit(new Event{Event::Close, c.id, {}, {}});
    std::lock_guard<std::mutex> g(mu_);
    conns_.erase(c.id);  // later write/end/destroy of this id are dropped
    if (--active_ == 0) idle_.notify_all();
  }

  std::shared_ptr<Conn> find(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "expects a connection id");
    std::lock_guard<std::mutex> g(mu_);
    auto it = conns_.find(info[0].As<Napi::Number>().Uint32Value());
    return it == conns_.end() ? nullptr : it->second;
  }

  Napi::Value Write(const Napi::CallbackInfo& info) {
    auto c = find(info);
    if (info.Length() != 2 || !info[1].IsBuffer()) throw Napi::TypeError::New(info.Env(), "write(id, buffer)");
    if (!c) return info.Env().Undefined();  // already gone: dropped, like a destroyed socket's write
    auto b = info[1].As<Napi::Buffer<uint8_t>>();
    {
      std::lock_guard<std::mutex> g(c->mu);
      c->out.emplace_back(b.Data(), b.Data() + b.Length());
    }
    SetEvent(c->wake);
    return info.Env().Undefined();
  }

  Napi::Value End(const Napi::CallbackInfo& info) {
    if (auto c = find(info)) {
      {
        std::lock_guard<std::mutex> g(c->mu);
        c->end_after_writes = true;
      }
      SetEvent(c->wake);
    }
    return info.Env().Undefined();
  }

  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    if (auto c = find(info)) {
      c->destroy = true;
      SetEvent(c->wake);
    }
    return info.Env().Undefined();
  }

  // Stops accepting and ends every connection (their 'close' events still arrive).
  Napi::Value Close(const Napi::CallbackInfo& info) {
    shutdown();
    return info.Env().Undefined();
  }

  void shutdown() {
    if (closed_.exchange(true)) return;
    if (stop_) SetEvent(stop_);
    if (accept_.joinable()) accept_.join();
    {
      // every I/O thread sees stop_ and ends its connection
      std::unique_lock<std::mutex> g(mu_);
      idle_.wait(g, [this] { return active_ == 0; });
    }
    if (stop_) CloseHandle(stop_);
    stop_ = nullptr;
    tsfn_.Release();
  }

  std::wstring name_;
  std::string own_sid_;
  std::vector<char> acl_;
  SECURITY_DESCRIPTOR sd_{};
  SECURITY_ATTRIBUTES sa_{};
  HANDLE stop_ = nullptr;
  Napi::ThreadSafeFunction tsfn_;
  std::thread accept_;
  std::mutex mu_;
  std::map<uint32_t, std::shared_ptr<Conn>> conns_;
  std::condition_variable idle_;
  int active_ = 0;  // running I/O threads
  uint32_t next_id_ = 1;
  std::atomic<bool> closed_{false};
};

// The daemon's own SID as a string (S-1-5-21-…): the peer policy compares clients with it.
Napi::Value CurrentUserSid(const Napi::CallbackInfo& info) {
  std::string err;
  std::string sid = token_sid(GetCurrentProcess(), err);
  if (sid.empty()) throw Napi::Error::New(info.Env(), "cannot read this process's user SID: " + err);
  return Napi::String::New(info.Env(), sid_string(sid));
}

}  // namespace

void RegisterPipeServer(Napi::Env env, Napi::Object exports) {
  exports.Set("PipeServer", Server::Define(env));
  exports.Set("currentUserSid", Napi::Function::New(env, CurrentUserSid, "currentUserSid"));
}
