/*
 * enet_echo: the bench's ENet row, ENet 1.3.17 alone on both ends. --server is an echo
 * host that sends every reliable packet back to its peer; --client is the closed-loop
 * load of `prism-bench --baseline` (client/bench/baseline_load.hpp) carried as ENet
 * reliable packets, with the same result line, so tests/bench/bench_lib.sh reads both.
 *
 * usage: enet_echo --server --port P [--host 127.0.0.1]
 *   Prints "event=listening udp=HOST:PORT" on stderr once bound (--port 0 picks a free
 *   port). Exits 0 on SIGTERM or SIGINT.
 * usage: enet_echo --client --server HOST:PORT [--clients N] [--inflight W]
 *                  [--payload-size B] [--duration S] [--warmup S] [--label L]
 *                  [--reply-timeout-ms T]
 *   N ENet hosts (one peer and one UDP socket each) driven from one thread, each keeping
 *   W reliable packets of B bytes in flight. Prints one line on stdout:
 *   label=L mode=enet requests=.. seconds=.. rps=.. p50_us=.. p99_us=.. p999_us=..
 *   timeouts=0 errors=..   A peer unanswered for T ms (default 1000, prism-bench's request
 *   timeout), or disconnected, ends the run: exit 1.
 */
#define _GNU_SOURCE
#include <enet/enet.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "parse_number.h"

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)

/* ENet's peer ids are 12 bits (ENET_PROTOCOL_MAXIMUM_PEER_ID): the most one host serves. */
#define SERVER_PEER_LIMIT 4095
#define CHANNELS 1
#define CONNECT_TIMEOUT_NS (5 * NS_PER_S)
/* Unanswered for this long, a peer has lost its server: prism-bench's request timeout.
 * --reply-timeout-ms changes it, for paths that lose a lot (run_impaired_bench.sh). */
#define DEFAULT_REPLY_TIMEOUT_MS 1000
/* ENet keeps its timers (retransmission, acknowledgements, pings) only when serviced, to
 * the millisecond of enet_time_get(): every host is serviced at least this often. */
#define SERVICE_INTERVAL_NS NS_PER_MS
/* The server wakes this often with nothing received, to notice a stop signal. */
#define SERVER_WAIT_MS 100
/* Each packet carries its send time (CLOCK_MONOTONIC ns) in its first bytes. */
#define STAMP_SIZE sizeof(int64_t)
/* prism-bench's --payload-size limit: one datagram, never fragmented by the kernel. */
#define MAX_PAYLOAD 60000

static void usage(void) {
  fprintf(stderr,
          "usage: enet_echo --server --port P [--host 127.0.0.1]\n"
          "       enet_echo --client --server HOST:PORT [--clients N] [--inflight W]\n"
          "                 [--payload-size B] [--duration S] [--warmup S] [--label L]\n"
          "                 [--reply-timeout-ms T]\n");
  exit(2);
}

static long parse_number(const char *text, long min, long max, const char *what) {
  return parse_number_of("enet_echo", text, min, max, what);
}

/* Seconds, fractions allowed; strictly positive unless zero_ok. */
static double parse_seconds(const char *text, int zero_ok, const char *what) {
  char *end = NULL;
  errno = 0;
  double v = strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0' || !isfinite(v) || v < 0 || (v == 0 && !zero_ok)) {
    fprintf(stderr, "enet_echo: %s must be a %s number of seconds, got '%s'\n", what,
            zero_ok ? "non-negative" : "positive", text);
    exit(2);
  }
  return v;
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* ---- server ---------------------------------------------------------------------------- */

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) { stop_signal = sig; }

/* Sends a copy of a received packet back to its peer, on its channel, with its flags. */
static void echo_packet(const ENetEvent *ev) {
  /* A received packet owns its bytes and has not been sent: only the delivery flags carry
   * over (NO_ALLOCATE would alias bytes freed just below). */
  const enet_uint32 flags = ev->packet->flags & (ENET_PACKET_FLAG_RELIABLE |
                                                 ENET_PACKET_FLAG_UNSEQUENCED |
                                                 ENET_PACKET_FLAG_UNRELIABLE_FRAGMENT);
  ENetPacket *reply = enet_packet_create(ev->packet->data, ev->packet->dataLength, flags);
  /* A peer that is going away refuses it; the reply is then still ours to free. */
  if (reply != NULL && enet_peer_send(ev->peer, ev->channelID, reply) < 0) {
    enet_packet_destroy(reply);
  }
  enet_packet_destroy(ev->packet);
}

static int run_server(int argc, char **argv) {
  const char *host_name = "127.0.0.1";
  long port = -1;
  for (int i = 2; i < argc; ++i) {
    if (i + 1 >= argc) usage();
    if (strcmp(argv[i], "--port") == 0) {
      port = parse_number(argv[++i], 0, 65535, "--port");
    } else if (strcmp(argv[i], "--host") == 0) {
      host_name = argv[++i];
    } else {
      usage();
    }
  }
  if (port < 0) usage();

  /* No SA_RESTART needed: ENet's wait retries on EINTR by itself, and returns within
   * SERVER_WAIT_MS anyway, when the loop sees the flag. */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  ENetAddress address;
  memset(&address, 0, sizeof address);
  if (enet_address_set_host(&address, host_name) != 0) {
    fprintf(stderr, "enet_echo: cannot resolve '%s' (ENet speaks IPv4 only)\n", host_name);
    return 1;
  }
  address.port = (enet_uint16)port;
  /* No bandwidth limits (0, 0): ENet then throttles nothing but unreliable packets. */
  ENetHost *host = enet_host_create(&address, SERVER_PEER_LIMIT, CHANNELS, 0, 0);
  if (host == NULL) {
    fprintf(stderr, "enet_echo: cannot bind %s:%ld (enet_host_create failed)\n", host_name, port);
    return 1;
  }
  /* With --port 0 the kernel picked one; the host only remembers the 0 it was given. */
  ENetAddress bound;
  if (enet_socket_get_address(host->socket, &bound) != 0) {
    fprintf(stderr, "enet_echo: getsockname on %s: %s\n", host_name, strerror(errno));
    return 1;
  }
  fprintf(stderr, "event=listening udp=%s:%u\n", host_name, (unsigned)bound.port);

  while (!stop_signal) {
    ENetEvent ev;
    int rc = enet_host_service(host, &ev, SERVER_WAIT_MS);
    /* Then take everything already received before flushing, so the replies to one
     * peer leave together in one datagram, as in an ENet application's frame. */
    while (rc > 0) {
      if (ev.type == ENET_EVENT_TYPE_RECEIVE) echo_packet(&ev);
      rc = enet_host_service(host, &ev, 0);
    }
    if (rc < 0) {
      if (stop_signal) break;
      fprintf(stderr, "enet_echo: enet_host_service failed: %s\n", strerror(errno));
      return 1;
    }
    enet_host_flush(host);
  }
  enet_host_destroy(host);
  fprintf(stderr, "event=stopped signal=%s\n", stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
  return 0;
}

/* ---- client: latency histogram ---------------------------------------------------------- */

/* client/bench/histogram.hpp in C: log-linear, 128 buckets per power of two of
 * nanoseconds, so a quantile is within 1% of what was recorded; fixed size, so recording
 * never allocates. */
#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)

static uint64_t latency_counts[64 * HIST_SUB];
static uint64_t latency_total;

static void latency_record(int64_t ns) {
  const uint64_t v = ns < 0 ? 0 : (uint64_t)ns;
  const int width = v == 0 ? 0 : 64 - __builtin_clzll(v);
  const int shift = width > HIST_SUB_BITS ? width - HIST_SUB_BITS : 0;
  latency_counts[(size_t)shift * HIST_SUB + (v >> shift)]++;
  ++latency_total;
}

/* The value below which a fraction q of the samples lie, in nanoseconds. */
static double latency_quantile_ns(double q) {
  if (latency_total == 0) return 0;
  const double exact_rank = q * (double)latency_total;
  uint64_t rank = (uint64_t)exact_rank;
  if ((double)rank < exact_rank) ++rank;
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < sizeof latency_counts / sizeof latency_counts[0]; ++i) {
    seen += latency_counts[i];
    if (seen >= rank) {
      const unsigned shift = (unsigned)(i / HIST_SUB);
      const uint64_t low = (uint64_t)(i % HIST_SUB) << shift;
      return (double)low + (double)((UINT64_C(1) << shift) - 1) / 2.0;
    }
  }
  return 0;
}

/* ---- client: the load ---------------------------------------------------------------- */

struct client_options {
  const char *server;
  ENetAddress address;
  long clients;
  long inflight;
  size_t payload_size;
  double duration_s;
  double warmup_s;
  const char *label;
  long reply_timeout_ms;
};

/* One simulated client: its own ENet host, so its own UDP socket, with one peer. */
struct bench_peer {
  ENetHost *host;
  ENetPeer *peer;
  int connected;
  int queued;               /* packets went to ENet this turn: flush the host */
  int64_t last_reply_ns;    /* the 1 s reply timeout runs from here */
  int64_t last_service_ns;  /* its timers are due again SERVICE_INTERVAL_NS after this */
};

struct load {
  const struct client_options *opts;
  struct bench_peer *peers;
  struct pollfd *pollfds;
  unsigned char *request;  /* the payload every request copies, its stamp rewritten */
  int64_t measure_ns;      /* replies from here ... */
  int64_t end_ns;          /* ... to here are counted */
  uint64_t timeouts;       /* 1 when a peer went unanswered past the reply timeout */
  uint64_t completed;
  uint64_t errors;         /* echoes that came back with another size */
};

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  fputs("enet_echo: ", stderr);
  vfprintf(stderr, fmt, args);
  fputc('\n', stderr);
  va_end(args);
  exit(1);
}

/* Queues one reliable request on channel 0, stamped with `now`. */
static void send_request(struct load *l, struct bench_peer *p, int64_t now) {
  memcpy(l->request, &now, STAMP_SIZE);
  /* ENet copies the bytes and owns the packet once it is sent. */
  ENetPacket *packet =
      enet_packet_create(l->request, l->opts->payload_size, ENET_PACKET_FLAG_RELIABLE);
  if (packet == NULL) fail("out of memory for an ENet packet");
  if (enet_peer_send(p->peer, 0, packet) < 0) {
    enet_packet_destroy(packet);
    fail("client %ld: enet_peer_send refused a packet (peer state %d)", (long)(p - l->peers),
         (int)p->peer->state);
  }
  p->queued = 1;
}

static void on_reply(struct load *l, struct bench_peer *p, ENetPacket *packet) {
  const int64_t now = now_ns();
  int64_t stamp = 0;
  if (packet->dataLength >= STAMP_SIZE) memcpy(&stamp, packet->data, STAMP_SIZE);
  if (now >= l->measure_ns && now < l->end_ns) {
    ++l->completed;
    if (packet->dataLength != l->opts->payload_size) ++l->errors;
    latency_record(now - stamp);
  }
  enet_packet_destroy(packet);
  p->last_reply_ns = now;
  /* Closed loop: each echo makes room for the next request at once. */
  send_request(l, p, now);
}

/* Runs p's host until it has no event left: sends what is queued, takes what arrived. */
static void service(struct load *l, struct bench_peer *p, int64_t now) {
  const long index = (long)(p - l->peers);
  ENetEvent ev;
  int rc;
  p->last_service_ns = now;
  while ((rc = enet_host_service(p->host, &ev, 0)) > 0) {
    switch (ev.type) {
      case ENET_EVENT_TYPE_CONNECT:
        p->connected = 1;
        break;
      case ENET_EVENT_TYPE_RECEIVE:
        if (!p->connected) {
          enet_packet_destroy(ev.packet);
          break;
        }
        on_reply(l, p, ev.packet);
        break;
      case ENET_EVENT_TYPE_DISCONNECT:
        /* ENet reports a refused or timed-out connect the same way. */
        fail("client %ld: %s by %s", index, p->connected ? "disconnected" : "not connected",
             l->opts->server);
      case ENET_EVENT_TYPE_NONE:
        break;
    }
  }
  if (rc < 0) fail("client %ld: enet_host_service failed: %s", index, strerror(errno));
}

/* Waits at most 1 ms for any socket to be readable; ENet's timers need no finer wait. */
static void wait_for_sockets(struct load *l) {
  const int n = poll(l->pollfds, (nfds_t)l->opts->clients, 1);
  if (n < 0 && errno != EINTR) fail("poll: %s", strerror(errno));
}

static int readable(const struct load *l, long i) {
  return (l->pollfds[i].revents & (POLLIN | POLLERR)) != 0;
}

static void open_peers(struct load *l) {
  const struct client_options *o = l->opts;
  for (long i = 0; i < o->clients; ++i) {
    struct bench_peer *p = &l->peers[i];
    /* One peer, one channel, no bandwidth limits, an ephemeral port of its own. */
    p->host = enet_host_create(NULL, 1, CHANNELS, 0, 0);
    if (p->host == NULL) fail("enet_host_create for client %ld failed (out of sockets?)", i);
    p->peer = enet_host_connect(p->host, &o->address, CHANNELS, 0);
    if (p->peer == NULL) fail("enet_host_connect for client %ld failed", i);
    l->pollfds[i].fd = p->host->socket;
    l->pollfds[i].events = POLLIN;
    enet_host_flush(p->host);
  }
  const int64_t deadline = now_ns() + CONNECT_TIMEOUT_NS;
  for (;;) {
    long connected = 0;
    for (long i = 0; i < o->clients; ++i) connected += l->peers[i].connected;
    if (connected == o->clients) return;
    if (now_ns() >= deadline) {
      fail("%ld of %ld clients connected to %s within 5 s (is enet_echo --server there?)",
           connected, o->clients, o->server);
    }
    wait_for_sockets(l);
    /* Connecting is short: every host is serviced every turn. */
    const int64_t now = now_ns();
    for (long i = 0; i < o->clients; ++i) service(l, &l->peers[i], now);
  }
}

static void run_load(struct load *l) {
  const struct client_options *o = l->opts;
  const int64_t start = now_ns();
  l->measure_ns = start + (int64_t)(o->warmup_s * (double)NS_PER_S);
  l->end_ns = l->measure_ns + (int64_t)(o->duration_s * (double)NS_PER_S);
  for (long i = 0; i < o->clients; ++i) {
    struct bench_peer *p = &l->peers[i];
    p->last_reply_ns = start;
    p->last_service_ns = start;
    for (long k = 0; k < o->inflight; ++k) send_request(l, p, start);
    enet_host_flush(p->host);
    p->queued = 0;
  }

  for (;;) {
    int64_t now = now_ns();
    if (now >= l->end_ns) return;
    wait_for_sockets(l);
    now = now_ns();
    /* A host busy with replies is serviced anyway; the idle ones only when their timers
     * are due, which saves a receive that finds nothing on each of them. */
    for (long i = 0; i < o->clients; ++i) {
      struct bench_peer *p = &l->peers[i];
      if (readable(l, i) || now - p->last_service_ns >= SERVICE_INTERVAL_NS) service(l, p, now);
    }
    /* service() already sent what was queued before its last call; this sends the rest
     * now rather than at the host's next turn. */
    for (long i = 0; i < o->clients; ++i) {
      struct bench_peer *p = &l->peers[i];
      if (!p->queued) continue;
      enet_host_flush(p->host);
      p->queued = 0;
    }
    now = now_ns();
    for (long i = 0; i < o->clients; ++i) {
      if (now - l->peers[i].last_reply_ns >= o->reply_timeout_ms * NS_PER_MS) {
        /* A result, not a crash: ENet's retransmission backs off (doubling), so on a lossy
         * path a request can wait that long. The run ends here and reports timeouts=1
         * over the time it measured; a dead server still fails (nothing completed). */
        fprintf(stderr, "enet_echo: client %ld: no reply from %s for %ld ms; the run ends here\n",
                i, o->server, o->reply_timeout_ms);
        l->timeouts = 1;
        if (now < l->end_ns) l->end_ns = now;
        return;
      }
    }
  }
}

/* HOST:PORT into an ENet (IPv4) address. */
static void parse_server(struct client_options *o, const char *text) {
  const char *colon = strrchr(text, ':');
  if (colon == NULL || colon == text) {
    fprintf(stderr, "enet_echo: --server must be HOST:PORT, got '%s'\n", text);
    exit(2);
  }
  char host_name[256];
  const size_t len = (size_t)(colon - text);
  if (len >= sizeof host_name) {
    fprintf(stderr, "enet_echo: --server host too long: '%s'\n", text);
    exit(2);
  }
  memcpy(host_name, text, len);
  host_name[len] = '\0';
  memset(&o->address, 0, sizeof o->address);
  o->address.port = (enet_uint16)parse_number(colon + 1, 1, 65535, "--server's port");
  if (enet_address_set_host(&o->address, host_name) != 0) {
    fprintf(stderr, "enet_echo: cannot resolve '%s' (ENet speaks IPv4 only)\n", host_name);
    exit(2);
  }
  o->server = text;
}

static int run_client(int argc, char **argv) {
  /* The defaults are prism-bench's. */
  struct client_options o = {
      .server = NULL,
      .clients = 4,
      .inflight = 16,
      .payload_size = 32,
      .duration_s = 5.0,
      .warmup_s = 0.5,
      .label = "enet",
      .reply_timeout_ms = DEFAULT_REPLY_TIMEOUT_MS,
  };
  for (int i = 2; i < argc; ++i) {
    if (i + 1 >= argc) usage();
    const char *opt = argv[i];
    const char *value = argv[++i];
    if (strcmp(opt, "--server") == 0) {
      parse_server(&o, value);
    } else if (strcmp(opt, "--clients") == 0) {
      o.clients = parse_number(value, 1, SERVER_PEER_LIMIT, "--clients");
    } else if (strcmp(opt, "--inflight") == 0) {
      o.inflight = parse_number(value, 1, 1L << 20, "--inflight");
    } else if (strcmp(opt, "--payload-size") == 0) {
      const long b = parse_number(value, 0, MAX_PAYLOAD, "--payload-size");
      if (b < (long)STAMP_SIZE) {
        fprintf(stderr,
                "enet_echo: --payload-size must be at least %zu (each packet carries its send "
                "time in its first %zu bytes), got %ld\n",
                STAMP_SIZE, STAMP_SIZE, b);
        exit(2);
      }
      o.payload_size = (size_t)b;
    } else if (strcmp(opt, "--duration") == 0) {
      o.duration_s = parse_seconds(value, 0, "--duration");
    } else if (strcmp(opt, "--warmup") == 0) {
      o.warmup_s = parse_seconds(value, 1, "--warmup");
    } else if (strcmp(opt, "--label") == 0) {
      o.label = value;
    } else if (strcmp(opt, "--reply-timeout-ms") == 0) {
      o.reply_timeout_ms = parse_number(value, 1, 3600L * 1000, "--reply-timeout-ms");
    } else {
      usage();
    }
  }
  if (o.server == NULL) usage();

  struct load l;
  memset(&l, 0, sizeof l);
  l.opts = &o;
  l.peers = calloc((size_t)o.clients, sizeof *l.peers);
  l.pollfds = calloc((size_t)o.clients, sizeof *l.pollfds);
  l.request = calloc(1, o.payload_size);
  if (l.peers == NULL || l.pollfds == NULL || l.request == NULL) fail("out of memory");
  /* Bytes after the stamp: a pattern, so a short or shifted echo would show. */
  for (size_t j = STAMP_SIZE; j < o.payload_size; ++j) l.request[j] = (unsigned char)j;

  open_peers(&l);
  run_load(&l);

  /* Tells the server at once, so its peer slots are free for the next run. */
  for (long i = 0; i < o.clients; ++i) {
    enet_peer_disconnect_now(l.peers[i].peer, 0);
    enet_host_destroy(l.peers[i].host);
  }
  free(l.request);
  free(l.pollfds);
  free(l.peers);

  /* The measured window: shorter when a reply timeout ended the run. */
  const double seconds = l.end_ns > l.measure_ns ? (double)(l.end_ns - l.measure_ns) / (double)NS_PER_S : 0;
  const double rps = seconds > 0 ? (double)l.completed / seconds : 0;
  printf("label=%s mode=enet requests=%llu seconds=%.3f rps=%.1f p50_us=%.1f p99_us=%.1f "
         "p999_us=%.1f timeouts=%llu errors=%llu\n",
         o.label, (unsigned long long)l.completed, seconds, rps,
         latency_quantile_ns(0.50) / 1e3, latency_quantile_ns(0.99) / 1e3,
         latency_quantile_ns(0.999) / 1e3, (unsigned long long)l.timeouts,
         (unsigned long long)l.errors);
  fflush(stdout);
  if (l.completed == 0) fail("nothing completed against %s", o.server);
  if (l.errors > 0) {
    fail("%llu echoes against %s came back with a size other than %zu", (unsigned long long)l.errors,
         o.server, o.payload_size);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  const int server = strcmp(argv[1], "--server") == 0;
  if (!server && strcmp(argv[1], "--client") != 0) usage();
  if (enet_initialize() != 0) {
    fprintf(stderr, "enet_echo: enet_initialize failed\n");
    return 1;
  }
  const int rc = server ? run_server(argc, argv) : run_client(argc, argv);
  enet_deinitialize();
  return rc;
}
