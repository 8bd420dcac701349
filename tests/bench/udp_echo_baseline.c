/*
 * udp_echo_baseline: the physical limit prism-bench is compared against
 * (tests/bench/run_bench.sh). Each thread owns one SO_REUSEPORT socket and sends every
 * datagram back to its source in batches (recvmmsg -> sendmmsg): no parsing, no
 * allocation, nothing but the kernel's UDP path.
 *
 * usage: udp_echo_baseline --port P [--host 127.0.0.1] [--threads T]
 * Prints "event=listening udp=HOST:PORT" on stderr once every thread's socket is bound
 * (--port 0 picks a free port). Exits 0 on SIGTERM or SIGINT.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "parse_number.h"

#define BATCH 64
#define MAX_DATAGRAM 65536
#define MAX_THREADS 256

struct worker {
  pthread_t thread;
  int fd;
};

static atomic_int stopping;

static void *echo_loop(void *arg) {
  struct worker *w = arg;
  static _Thread_local struct mmsghdr msgs[BATCH];
  static _Thread_local struct iovec iov[BATCH];
  static _Thread_local struct sockaddr_storage sources[BATCH];
  unsigned char *buffers = malloc((size_t)BATCH * MAX_DATAGRAM);
  if (buffers == NULL) {
    fprintf(stderr, "udp_echo_baseline: out of memory\n");
    exit(1);
  }
  for (int j = 0; j < BATCH; ++j) {
    iov[j].iov_base = buffers + (size_t)j * MAX_DATAGRAM;
    msgs[j].msg_hdr.msg_iov = &iov[j];
    msgs[j].msg_hdr.msg_iovlen = 1;
    msgs[j].msg_hdr.msg_name = &sources[j];
  }
  for (;;) {
    for (int j = 0; j < BATCH; ++j) {
      iov[j].iov_len = MAX_DATAGRAM;
      msgs[j].msg_hdr.msg_namelen = sizeof sources[j];
    }
    /* Blocks until at least one datagram is there, then takes what is queued. */
    int n = recvmmsg(w->fd, msgs, BATCH, MSG_WAITFORONE, NULL);
    if (atomic_load(&stopping)) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "udp_echo_baseline: recvmmsg: %s\n", strerror(errno));
      exit(1);
    }
    for (int j = 0; j < n; ++j) iov[j].iov_len = msgs[j].msg_len;
    int sent = 0;
    while (sent < n) {
      int r = sendmmsg(w->fd, msgs + sent, (unsigned)(n - sent), 0);
      if (r < 0) {
        if (errno == EINTR) continue;
        /* A full send buffer or an unreachable source drops the rest, as UDP may. */
        break;
      }
      sent += r;
    }
  }
  free(buffers);
  return NULL;
}

static void usage(void) {
  fprintf(stderr, "usage: udp_echo_baseline --port P [--host 127.0.0.1] [--threads T]\n");
  exit(2);
}

static long parse_number(const char *text, long min, long max, const char *what) {
  return parse_number_of("udp_echo_baseline", text, min, max, what);
}

/* Binds a new SO_REUSEPORT socket to addr; returns the fd or -1 with errno set. */
static int bind_socket(const struct addrinfo *ai, const struct sockaddr_storage *addr) {
  int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
      bind(fd, (const struct sockaddr *)addr, ai->ai_addrlen) != 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

static void set_port(struct sockaddr_storage *addr, uint16_t port) {
  if (addr->ss_family == AF_INET6) {
    ((struct sockaddr_in6 *)addr)->sin6_port = htons(port);
  } else {
    ((struct sockaddr_in *)addr)->sin_port = htons(port);
  }
}

static uint16_t get_port(const struct sockaddr_storage *addr) {
  if (addr->ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
  return ntohs(((const struct sockaddr_in *)addr)->sin_port);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  long port = -1;
  long threads = 1;
  for (int i = 1; i < argc; ++i) {
    if (i + 1 >= argc) usage();
    if (strcmp(argv[i], "--port") == 0) {
      port = parse_number(argv[++i], 0, 65535, "--port");
    } else if (strcmp(argv[i], "--host") == 0) {
      host = argv[++i];
    } else if (strcmp(argv[i], "--threads") == 0) {
      threads = parse_number(argv[++i], 1, MAX_THREADS, "--threads");
    } else {
      usage();
    }
  }
  if (port < 0) usage();

  /* Only the main thread takes SIGINT/SIGTERM (in sigwait); workers inherit the mask. */
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_PASSIVE;
  struct addrinfo *ai = NULL;
  int rc = getaddrinfo(host, NULL, &hints, &ai);
  if (rc != 0) {
    fprintf(stderr, "udp_echo_baseline: cannot resolve '%s': %s\n", host, gai_strerror(rc));
    return 1;
  }
  struct sockaddr_storage addr;
  memset(&addr, 0, sizeof addr);
  memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
  set_port(&addr, (uint16_t)port);

  static struct worker workers[MAX_THREADS];
  for (long t = 0; t < threads; ++t) {
    workers[t].fd = bind_socket(ai, &addr);
    if (workers[t].fd < 0) {
      fprintf(stderr, "udp_echo_baseline: bind %s:%u: %s\n", host, get_port(&addr), strerror(errno));
      return 1;
    }
    if (t == 0) {
      /* With --port 0 the kernel picked one; the other sockets share it. */
      socklen_t len = sizeof addr;
      getsockname(workers[0].fd, (struct sockaddr *)&addr, &len);
    }
  }
  freeaddrinfo(ai);
  for (long t = 0; t < threads; ++t) {
    rc = pthread_create(&workers[t].thread, NULL, echo_loop, &workers[t]);
    if (rc != 0) {
      fprintf(stderr, "udp_echo_baseline: pthread_create: %s\n", strerror(rc));
      return 1;
    }
  }
  const int ipv6 = strchr(host, ':') != NULL;
  fprintf(stderr, "event=listening udp=%s%s%s:%u\n", ipv6 ? "[" : "", host, ipv6 ? "]" : "",
          get_port(&addr));

  int sig = 0;
  while (sigwait(&stop_signals, &sig) != 0) {
  }
  atomic_store(&stopping, 1);
  /* Shutting a socket down wakes the thread blocked in recvmmsg on it (Linux returns
   * ENOTCONN for an unconnected UDP socket but still marks it and wakes readers). */
  for (long t = 0; t < threads; ++t) shutdown(workers[t].fd, SHUT_RDWR);
  for (long t = 0; t < threads; ++t) {
    pthread_join(workers[t].thread, NULL);
    close(workers[t].fd);
  }
  fprintf(stderr, "event=stopped signal=%s\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  return 0;
}
