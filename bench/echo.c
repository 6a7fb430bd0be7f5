/*
 * The floor of one request/reply over a unix socket, for docs/performance.md "Where the overhead
 * goes": 64 bytes there and back, no signing.
 *
 *   echo server <socket-path>          a C epoll echo server (one client)
 *   echo client <socket-path> <count>  times <count> round trips, prints "p50_us=<..> p90_us=<..>"
 *
 * The client waits the way the module does (poll, then recv); the other server is Node's
 * net.createServer echo (bench/sequential.mjs starts it).
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "timing.h"

static int address(const char *path, struct sockaddr_un *a) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof a->sun_path) return -1;
  strcpy(a->sun_path, path);
  return 0;
}

static int serve(const char *path) {
  struct sockaddr_un a;
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  if (s < 0 || address(path, &a) != 0) return 1;
  unlink(path);
  if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 4) != 0) return 1;
  printf("ready\n");
  fflush(stdout);
  int fd = accept(s, NULL, NULL);
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
  if (fd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) return 1;
  char buf[4096];
  for (;;) {
    struct epoll_event out;
    if (epoll_wait(ep, &out, 1, -1) < 0) return 1;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return 0;
    if (write(fd, buf, (size_t)n) != n) return 1;
  }
}

static int client(const char *path, int count) {
  struct sockaddr_un a;
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0 || address(path, &a) != 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    perror("connect");
    return 1;
  }
  char buf[64] = {1};
  double *t = malloc(sizeof(double) * (size_t)count);
  int warmup = count / 10 + 1;
  for (int i = -warmup; i < count; i++) {
    double t0 = now_us();
    if (send(fd, buf, sizeof buf, 0) != (ssize_t)sizeof buf) return 1;
    size_t got = 0;
    while (got < sizeof buf) {
      struct pollfd p = {.fd = fd, .events = POLLIN};
      if (poll(&p, 1, 5000) != 1) return 1;
      ssize_t n = recv(fd, buf + got, sizeof buf - got, 0);
      if (n <= 0) return 1;
      got += (size_t)n;
    }
    if (i >= 0) t[i] = now_us() - t0;
  }
  qsort(t, (size_t)count, sizeof(double), cmp_double);
  printf("p50_us=%.1f p90_us=%.1f\n", t[count / 2], t[count * 9 / 10]);
  close(fd);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "server") == 0) return serve(argv[2]);
  if (argc == 4 && strcmp(argv[1], "client") == 0) return client(argv[2], atoi(argv[3]));
  fprintf(stderr, "usage: %s server <path> | client <path> <count>\n", argv[0]);
  return 2;
}
