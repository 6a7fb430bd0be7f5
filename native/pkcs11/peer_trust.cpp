#include "peer_trust.h"

#include <errno.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>


namespace sb {

std::string dir_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

namespace {

// "uid 65534 (nobody)"; the name only when the user database knows it.
std::string who(uid_t uid) {
  std::string s = "uid " + std::to_string(uid);
  passwd pw{};
  passwd* found = nullptr;
  char buf[1024];
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found && found->pw_name)
    s += std::string(" (") + found->pw_name + ")";
  return s;
}

Status refuse(const std::string& line) { return Status(CKR_DEVICE_ERROR, line).with_notice(NoticeCause::UntrustedDaemon); }

}  // namespace

Status check_socket_dir(const std::string& socket_path, bool* missing) {
  *missing = false;
  const std::string dir = dir_of(socket_path);
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      *missing = true;
      return Status(CKR_DEVICE_ERROR, "cannot reach the signbridge daemon at " + socket_path + " (" + dir +
                                          " does not exist); start it with \"signbridge daemon ...\" or set SIGNBRIDGE_SOCKET")
          .with_notice(NoticeCause::Unreachable);
    }
    return Status(CKR_DEVICE_ERROR, "cannot check the socket directory " + dir + ": " + strerror(errno));
  }
  const uid_t me = getuid();
  std::string problem;
  if (S_ISLNK(st.st_mode)) problem = "it is a symbolic link";
  else if (!S_ISDIR(st.st_mode)) problem = "it is not a directory";
  else if (st.st_uid != me && st.st_uid != 0)
    problem = "it is owned by " + who(st.st_uid) + ", not by you (" + who(me) + ") or root";
  else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    char mode[8];
    snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    problem = std::string("group or others may write to it (mode ") + mode + ")";
  }
  if (problem.empty()) return Status::Ok();
  return refuse("refusing the socket directory " + dir + ": " + problem +
                ", so another user could put a fake daemon there; nothing was sent. Have it removed (rm -rf " + dir +
                ") and start your daemon with \"signbridge daemon ...\", or set SIGNBRIDGE_SOCKET to a socket in a directory only you can write");
}

Status check_peer(int fd, const std::string& socket_path) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    return refuse("cannot tell who runs the daemon at " + socket_path + " (SO_PEERCRED: " + strerror(errno) +
                  "); nothing was sent");
  const uid_t me = getuid();
  if (cred.uid == me || cred.uid == 0) return Status::Ok();
  return refuse("refusing the daemon at " + socket_path + ": it runs as " + who(cred.uid) + " (pid " +
                std::to_string(cred.pid) + "), not as you (" + who(me) +
                ") or root, so it could return false signatures or read what you sign; nothing was sent. Stop it, and start your own with \"signbridge daemon ...\" or set SIGNBRIDGE_SOCKET to your daemon's socket");
}

}  // namespace sb
