// signbridge_addon: peer credentials of a connected unix-domain socket (design.md "Addon API").
//   peerCredentials(fd: number): { pid: number; uid: number; gid: number }
// On Windows also the daemon's named-pipe server and its user SID (pipe_server_win.cpp).
// Errors are JS Error objects with `.code` set here, never parsed back out of a message.
#include <errno.h>
#ifndef _WIN32
#include <sys/socket.h>
#include <sys/types.h>
#endif

#include <cstring>
#include <string>

#include <napi.h>

#ifdef _WIN32
void RegisterPipeServer(Napi::Env env, Napi::Object exports);
#endif

namespace {

Napi::Error coded(Napi::Env env, const std::string& message, const char* code) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsNumber()) {
    Napi::TypeError e = Napi::TypeError::New(env, "peerCredentials(fd) expects one integer file descriptor");
    e.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
    throw e;
  }
  double d = info[0].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 2147483647.0) || d != static_cast<double>(static_cast<int>(d))) {
    Napi::RangeError e = Napi::RangeError::New(env, "peerCredentials(fd): fd must be an integer >= 0");
    e.Set("code", Napi::String::New(env, "ERR_OUT_OF_RANGE"));
    throw e;
  }
  int fd = static_cast<int>(d);
#ifdef SO_PEERCRED
  struct ucred cred {};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    int err = errno;
    Napi::Error e = coded(env,
                          "cannot read the peer credentials of fd " + std::to_string(fd) + ": " + strerror(err) +
                              " (it must be a connected unix-domain socket)",
                          "SIGNBRIDGE_ERR_PEERCRED");
    e.Set("errno", Napi::Number::New(env, err));
    throw e;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, cred.pid));
  out.Set("uid", Napi::Number::New(env, cred.uid));
  out.Set("gid", Napi::Number::New(env, cred.gid));
  return out;
#else
  (void)fd;
  throw coded(env, "peer credentials are not supported on this platform", "SIGNBRIDGE_ERR_PEERCRED");
#endif
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials, "peerCredentials"));
#ifdef _WIN32
  RegisterPipeServer(env, exports);
#endif
  return exports;
}

}  // namespace

NODE_API_MODULE(signbridge_addon, Init)
